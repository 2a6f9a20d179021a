-- The first schema: everything DESIGN §3 names.
-- Applied once, in a transaction, by `python -m db migrate`.

-- The seed's mapping table (names and constraints fixed by the seed guide),
-- extended with what the gateway needs to answer "what happened to this message".
CREATE TABLE sms_gateway_state (
    cxone_conversation_id TEXT NOT NULL,
    cxone_message_id TEXT NOT NULL,
    twilio_message_sid TEXT UNIQUE NOT NULL,
    twilio_status TEXT NOT NULL DEFAULT 'queued',
    direction TEXT NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (cxone_conversation_id, cxone_message_id),
    -- extensions
    to_number TEXT,
    from_number TEXT,
    error_code INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,       -- Twilio dispatches (SIDs) for this message
    outcome TEXT,                               -- delivered | undelivered | failed | canceled | no_receipt
    final_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX sms_gateway_state_message ON sms_gateway_state (cxone_message_id);
-- The reconciler's work list: outbound messages still waiting for a final receipt.
CREATE INDEX sms_gateway_state_awaiting_receipt ON sms_gateway_state (updated_at)
    WHERE direction = 'OUTBOUND' AND outcome IS NULL;

-- Every Twilio message the gateway created or adopted (one per dispatch: a
-- 30008 re-dispatch gets a new SID for the same CXone message).
CREATE TABLE twilio_messages (
    sid TEXT PRIMARY KEY,
    cxone_message_id TEXT,                      -- NULL for gateway-originated replies (HELP)
    cxone_conversation_id TEXT,
    purpose TEXT NOT NULL DEFAULT 'reply' CHECK (purpose IN ('reply', 'help')),
    dispatch INTEGER NOT NULL DEFAULT 1,
    to_number TEXT NOT NULL,
    from_number TEXT,
    status TEXT NOT NULL,
    error_code INTEGER,
    adopted BOOLEAN NOT NULL DEFAULT FALSE,     -- found at Twilio after an ambiguous send
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX twilio_messages_message ON twilio_messages (cxone_message_id);

-- The job queue. A claimed job's run_at is its lease expiry: a job whose
-- worker died becomes runnable again when the lease runs out.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    ordering_key TEXT,                          -- jobs sharing it run one at a time, in id order
    payload JSONB NOT NULL DEFAULT '{}'::jsonb,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'dead')),
    run_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    attempts INTEGER NOT NULL DEFAULT 0,        -- failed tries so far
    claims INTEGER NOT NULL DEFAULT 0,          -- times claimed; the fencing token
    rerun BOOLEAN NOT NULL DEFAULT FALSE,       -- new work arrived while it ran: run again
    locked_by TEXT,
    locked_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    finished_at TIMESTAMPTZ
);
-- The hot index: runnable rows only, so it stays small however long history grows.
CREATE INDEX outbox_runnable ON outbox (run_at, id) WHERE state = 'queued';
CREATE INDEX outbox_ordering ON outbox (ordering_key, id)
    WHERE state = 'queued' AND ordering_key IS NOT NULL;
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state = 'done';
CREATE INDEX outbox_dead ON outbox (updated_at) WHERE state = 'dead';
-- A queue table churns: vacuum it early and leave room for HOT updates.
ALTER TABLE outbox SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 200, autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0);

-- Per-sender pacing. tat: the next free slot to reserve (GCRA). A send may start
-- only when none of its sender is in flight and Twilio answered the previous one
-- at least one spacing ago, so Twilio never sees two closer than the limit.
CREATE TABLE throttle_state (
    key TEXT PRIMARY KEY,                       -- "sender:+1800…" or "service:MG…"
    tat TIMESTAMPTZ NOT NULL,
    in_flight_until TIMESTAMPTZ,                -- a create is in flight (lease, if its worker dies)
    last_answered_at TIMESTAMPTZ,               -- when Twilio answered the previous create
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
ALTER TABLE throttle_state SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05);

-- Seed §4: sha256(cxone_message_id:body:to), kept 24 h, checked before any Twilio call.
-- state in_flight means a create may have reached Twilio: look it up before resending.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    cxone_message_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('in_flight', 'sent', 'failed')),
    twilio_message_sid TEXT,
    to_number TEXT NOT NULL,
    from_number TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    result JSONB,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT NOW() + INTERVAL '24 hours'
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Consent: the current state per (customer number, sender scope) and its history.
CREATE TABLE consent (
    phone_number TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '*',            -- '*' = every sender of this gateway
    status TEXT NOT NULL CHECK (status IN ('opted_in', 'opted_out')),
    source TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (phone_number, scope)
);
CREATE TABLE consent_history (
    id BIGSERIAL PRIMARY KEY,
    phone_number TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('opted_in', 'opted_out')),
    source TEXT NOT NULL CHECK (source IN ('keyword', 'opt_out_type', 'twilio_21610', 'api',
                                            'cli', 'import')),
    evidence JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX consent_history_number ON consent_history (phone_number, id);

-- The last CXone cursor committed, per poller.
CREATE TABLE poll_cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Receipt dedupe and history: one row per (MessageSid, MessageStatus).
-- applied_at stays NULL while the SID is unknown (the callback beat the commit).
CREATE TABLE twilio_receipts (
    id BIGSERIAL PRIMARY KEY,
    message_sid TEXT NOT NULL,
    message_status TEXT NOT NULL,
    error_code INTEGER,
    source TEXT NOT NULL DEFAULT 'callback' CHECK (source IN ('callback', 'reconcile')),
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    applied_at TIMESTAMPTZ,
    UNIQUE (message_sid, message_status)
);
CREATE INDEX twilio_receipts_unapplied ON twilio_receipts (message_sid) WHERE applied_at IS NULL;
CREATE INDEX twilio_receipts_received ON twilio_receipts (received_at);

-- Inbound dedupe (by MessageSid) and what became of each inbound text.
CREATE TABLE inbound_messages (
    message_sid TEXT PRIMARY KEY,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    keyword TEXT,                               -- opt_out | opt_in | help
    num_media INTEGER NOT NULL DEFAULT 0,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX inbound_messages_received ON inbound_messages (received_at);

-- Threading: the CXone conversation of (customer number, business number).
CREATE TABLE cxone_conversations (
    customer_number TEXT NOT NULL,
    business_number TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (customer_number, business_number)
);

-- CXone status sync: what CXone has been told, and the updates still to push.
CREATE TABLE cxone_message_status (
    cxone_message_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TABLE cxone_status_updates (
    id BIGSERIAL PRIMARY KEY,
    cxone_message_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('SENT', 'DELIVERED', 'FAILED', 'UNDELIVERABLE')),
    reason_code TEXT,
    reason_message TEXT,
    external_id TEXT,
    receipt_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    finished_at TIMESTAMPTZ,
    outcome TEXT                                -- pushed | skipped | not_found | conflict
);
CREATE INDEX cxone_status_updates_pending ON cxone_status_updates (cxone_message_id, id)
    WHERE finished_at IS NULL;
CREATE INDEX cxone_status_updates_finished ON cxone_status_updates (finished_at)
    WHERE finished_at IS NOT NULL;

-- Liveness of worker processes, for /readyz.
CREATE TABLE worker_heartbeats (
    worker_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    beat_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    stopped_at TIMESTAMPTZ
);

-- The audit trail: every status transition and consent change. Append-only.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    event TEXT NOT NULL,
    cxone_message_id TEXT,
    twilio_message_sid TEXT,
    phone_number TEXT,
    from_state TEXT,
    to_state TEXT,
    reason TEXT,
    source TEXT NOT NULL,
    details JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_message ON audit_log (cxone_message_id, id) WHERE cxone_message_id IS NOT NULL;
CREATE INDEX audit_log_sid ON audit_log (twilio_message_sid, id) WHERE twilio_message_sid IS NOT NULL;
CREATE INDEX audit_log_phone ON audit_log (phone_number, id) WHERE phone_number IS NOT NULL;

CREATE FUNCTION forbid_update_or_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_update_or_delete();
CREATE TRIGGER consent_history_append_only BEFORE UPDATE OR DELETE ON consent_history
    FOR EACH ROW EXECUTE FUNCTION forbid_update_or_delete();
