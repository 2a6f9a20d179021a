-- The current schema: what applying every file of db/migrations/ gives, in one place
-- (tests/integration/test_schema.py checks that they agree). Read it; never apply it
-- to a database the gateway runs on (migrations do that). After adding a migration,
-- regenerate it: python -m db schema > db/schema.sql  (needs pg_dump, a migrated
-- database in DATABASE_URL).

SET check_function_bodies = false;

CREATE FUNCTION forbid_update_or_delete() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TABLE twilio_messages (
    sid text NOT NULL,
    cxone_message_id text,
    cxone_conversation_id text,
    purpose text DEFAULT 'reply'::text NOT NULL,
    dispatch integer DEFAULT 1 NOT NULL,
    to_number text NOT NULL,
    from_number text,
    status text NOT NULL,
    error_code integer,
    adopted boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    status_rank smallint DEFAULT 0 NOT NULL,
    final boolean DEFAULT false NOT NULL,
    report_to text,
    part smallint DEFAULT 1 NOT NULL,
    parts smallint DEFAULT 1 NOT NULL,
    segments smallint,
    encoding text,
    final_report jsonb,
    CONSTRAINT twilio_messages_purpose_check CHECK ((purpose = ANY (ARRAY['reply'::text, 'help'::text])))
);

CREATE FUNCTION smsgw_apply_part_receipt(m twilio_messages, p_status text, p_error integer, p_from text, p_report_status text, p_reason_code text, p_reason_message text, p_status_kind text) RETURNS TABLE(result text, cxone_message_id text, to_number text, from_number text, purpose text, dispatch integer, previous_status text, mapped boolean)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_mapped BOOLEAN;
    v_final RECORD;
BEGIN
    SELECT EXISTS (SELECT 1 FROM sms_gateway_state s
                   WHERE s.cxone_message_id = m.cxone_message_id AND s.direction = 'OUTBOUND'
                     AND s.attempts = m.dispatch) INTO v_mapped;
    UPDATE sms_gateway_state s SET twilio_status = p_status, updated_at = now(),
        from_number = COALESCE(p_from, s.from_number)
    WHERE s.twilio_message_sid = m.sid;
    IF p_report_status IS NULL OR NOT v_mapped OR m.report_to IS NULL THEN
        RETURN QUERY SELECT 'applied', m.cxone_message_id, m.to_number,
                            COALESCE(p_from, m.from_number), m.purpose, m.dispatch, m.status,
                            v_mapped;
        RETURN;
    END IF;
    UPDATE twilio_messages t SET final_report = jsonb_build_object(
        'status', p_report_status, 'code', p_reason_code, 'message', p_reason_message,
        'twilio_status', p_status, 'error', p_error)
    WHERE t.sid = m.sid;
    PERFORM pg_advisory_xact_lock(hashtext('parts:' || m.cxone_message_id));
    IF (SELECT count(*) FROM twilio_messages t
        WHERE t.cxone_message_id = m.cxone_message_id AND t.dispatch = m.dispatch
          AND t.final_report IS NOT NULL) < m.parts
       OR EXISTS (SELECT 1 FROM sms_gateway_state s
                  WHERE s.cxone_message_id = m.cxone_message_id AND s.direction = 'OUTBOUND'
                    AND s.outcome IS NOT NULL) THEN
        RETURN QUERY SELECT 'applied', m.cxone_message_id, m.to_number,
                            COALESCE(p_from, m.from_number), m.purpose, m.dispatch, m.status,
                            v_mapped;
        RETURN;
    END IF;
    SELECT t.final_report AS r INTO v_final FROM twilio_messages t
    WHERE t.cxone_message_id = m.cxone_message_id AND t.dispatch = m.dispatch
    ORDER BY (t.final_report->>'status' = 'DELIVERED'), t.part LIMIT 1;
    UPDATE sms_gateway_state s SET outcome = v_final.r->>'twilio_status', final_at = now(),
        error_code = (v_final.r->>'error')::INTEGER, updated_at = now()
    WHERE s.cxone_message_id = m.cxone_message_id AND s.direction = 'OUTBOUND';
    PERFORM smsgw_queue_status_report(p_status_kind, m.report_to, v_final.r->>'status',
                                      v_final.r->>'code', v_final.r->>'message', NULL, NULL);
    RETURN QUERY SELECT 'final', m.cxone_message_id, m.to_number,
                        COALESCE(p_from, m.from_number), m.purpose, m.dispatch, m.status,
                        v_mapped;
END;
$$;

CREATE FUNCTION smsgw_apply_receipt(p_sid text, p_status text, p_rank integer, p_final boolean, p_error integer, p_from text, p_source text, p_receipt_id bigint, p_report_status text, p_reason_code text, p_reason_message text, p_status_kind text) RETURNS TABLE(result text, cxone_message_id text, to_number text, from_number text, purpose text, dispatch integer, previous_status text, mapped boolean)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_receipt BIGINT := p_receipt_id;
    v_mapped BOOLEAN;
    m twilio_messages%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_sid));
    SELECT * INTO m FROM twilio_messages t WHERE t.sid = p_sid FOR UPDATE;
    IF v_receipt IS NULL THEN
        INSERT INTO twilio_receipts (message_sid, message_status, error_code, source, applied_at)
        VALUES (p_sid, p_status, p_error, p_source, CASE WHEN m.sid IS NOT NULL THEN now() END)
        ON CONFLICT (message_sid, message_status) DO NOTHING
        RETURNING id INTO v_receipt;
        IF v_receipt IS NULL THEN
            RETURN QUERY SELECT 'duplicate', NULL::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT,
                                NULL::INTEGER, NULL::TEXT, FALSE;
            RETURN;
        END IF;
    ELSIF m.sid IS NOT NULL THEN
        UPDATE twilio_receipts SET applied_at = now() WHERE id = v_receipt;
    END IF;
    IF m.sid IS NULL THEN
        RETURN QUERY SELECT 'pending', NULL::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT,
                            NULL::INTEGER, NULL::TEXT, FALSE;
        RETURN;
    END IF;
    IF m.final OR p_rank <= m.status_rank THEN
        RETURN QUERY SELECT 'stale', m.cxone_message_id, m.to_number, m.from_number, m.purpose,
                            m.dispatch, m.status, FALSE;
        RETURN;
    END IF;
    UPDATE twilio_messages t SET status = p_status, status_rank = p_rank, final = p_final,
        error_code = COALESCE(p_error, t.error_code),
        from_number = COALESCE(p_from, t.from_number), updated_at = now()
    WHERE t.sid = p_sid;
    INSERT INTO audit_log (event, cxone_message_id, twilio_message_sid, from_state, to_state,
                           reason, source)
    VALUES ('message.status', m.cxone_message_id, p_sid, m.status, p_status,
            p_error::TEXT, p_source);
    IF m.parts > 1 THEN
        RETURN QUERY SELECT * FROM smsgw_apply_part_receipt(m, p_status, p_error, p_from,
            p_report_status, p_reason_code, p_reason_message, p_status_kind);
        RETURN;
    END IF;
    UPDATE sms_gateway_state s SET twilio_status = p_status,
        error_code = COALESCE(p_error, s.error_code),
        from_number = COALESCE(p_from, s.from_number),
        outcome = CASE WHEN p_report_status IS NOT NULL THEN p_status ELSE s.outcome END,
        final_at = CASE WHEN p_report_status IS NOT NULL THEN now() ELSE s.final_at END,
        updated_at = now()
    WHERE s.twilio_message_sid = p_sid;
    v_mapped := FOUND;
    IF p_report_status IS NOT NULL AND v_mapped AND m.report_to IS NOT NULL THEN
        PERFORM smsgw_queue_status_report(p_status_kind, m.report_to, p_report_status,
                                          p_reason_code, p_reason_message, NULL, NULL);
        RETURN QUERY SELECT 'final', m.cxone_message_id, m.to_number,
                            COALESCE(p_from, m.from_number), m.purpose, m.dispatch, m.status,
                            v_mapped;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'applied', m.cxone_message_id, m.to_number,
                        COALESCE(p_from, m.from_number), m.purpose, m.dispatch, m.status,
                        v_mapped;
END;
$$;

CREATE FUNCTION smsgw_complete_job(p_id bigint, p_claims integer) RETURNS boolean
    LANGUAGE sql
    AS $$
    WITH done AS (
        UPDATE outbox SET
            state = CASE WHEN rerun THEN 'queued' ELSE 'done' END,
            finished_at = CASE WHEN rerun THEN NULL ELSE now() END,
            run_at = now(),
            rerun = FALSE,
            locked_by = NULL,
            updated_at = now()
        WHERE id = p_id AND claims = p_claims AND state = 'queued'
        RETURNING id
    )
    SELECT EXISTS (SELECT 1 FROM done);
$$;

CREATE FUNCTION smsgw_enqueue_or_rerun(p_kind text, p_dedupe_key text, p_payload jsonb, p_run_at timestamp with time zone, p_ordering_key text) RETURNS bigint
    LANGUAGE sql
    AS $$
    INSERT INTO outbox AS o (kind, dedupe_key, payload, run_at, ordering_key)
    VALUES (p_kind, p_dedupe_key, p_payload, COALESCE(p_run_at, now()), p_ordering_key)
    ON CONFLICT (dedupe_key) DO UPDATE SET
        rerun = (o.state = 'queued' AND o.locked_by IS NOT NULL),
        run_at = CASE WHEN o.state = 'queued' THEN o.run_at ELSE EXCLUDED.run_at END,
        attempts = CASE WHEN o.state = 'queued' THEN o.attempts ELSE 0 END,
        payload = o.payload || EXCLUDED.payload,
        state = 'queued',
        finished_at = NULL,
        updated_at = now()
    RETURNING id;
$$;

CREATE FUNCTION smsgw_queue_status_report(p_kind text, p_message_id text, p_status text, p_reason_code text, p_reason_message text, p_external_id text, p_at timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO cxone_status_updates (cxone_message_id, status, reason_code, reason_message,
                                      external_id, receipt_at)
    VALUES (p_message_id, p_status, p_reason_code, p_reason_message, p_external_id,
            COALESCE(p_at, now()));
    PERFORM smsgw_enqueue_or_rerun(p_kind, p_kind || ':' || p_message_id,
                                   jsonb_build_object('message_id', p_message_id), NULL, NULL);
    PERFORM smsgw_wake_dispatchers();
END;
$$;

CREATE FUNCTION smsgw_record_sent(p_sid text, p_status text, p_status_rank integer, p_message_id text, p_conversation_id text, p_purpose text, p_dispatch integer, p_to text, p_from text, p_adopted boolean, p_idempotency_key text, p_report_to text, p_report_status text, p_status_kind text, p_job_id bigint, p_job_claims integer, p_audit_event text, p_audit_details jsonb, p_part integer, p_parts integer, p_segments integer, p_encoding text, p_complete boolean) RETURNS TABLE(completed boolean, receipts_waiting boolean)
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_sid));
    UPDATE idempotency_keys SET state = 'sent', twilio_message_sid = p_sid,
        result = jsonb_build_object('status', p_status, 'from', p_from)
    WHERE key = p_idempotency_key;
    INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, purpose,
                                 dispatch, to_number, from_number, status, status_rank,
                                 adopted, report_to, part, parts, segments, encoding)
    VALUES (p_sid, p_message_id, p_conversation_id, p_purpose, p_dispatch, p_to, p_from,
            p_status, p_status_rank, p_adopted, p_report_to, p_part, p_parts, p_segments,
            p_encoding)
    ON CONFLICT (sid) DO NOTHING;
    -- A long reply sent in parts is mapped (and reported SENT) by its first part.
    IF p_report_to IS NOT NULL AND p_conversation_id IS NOT NULL AND p_part = 1 THEN
        INSERT INTO sms_gateway_state AS s (cxone_conversation_id, cxone_message_id,
            twilio_message_sid, twilio_status, direction, to_number, from_number, attempts)
        VALUES (p_conversation_id, p_report_to, p_sid, p_status, 'OUTBOUND', p_to, p_from,
                p_dispatch)
        ON CONFLICT (cxone_conversation_id, cxone_message_id) DO UPDATE SET
            twilio_message_sid = EXCLUDED.twilio_message_sid,
            twilio_status = EXCLUDED.twilio_status,
            from_number = EXCLUDED.from_number,
            attempts = EXCLUDED.attempts,
            error_code = NULL, outcome = NULL, final_at = NULL,
            updated_at = now();
        IF p_report_status IS NOT NULL THEN
            PERFORM smsgw_queue_status_report(p_status_kind, p_report_to, p_report_status,
                                              NULL, NULL, p_sid, NULL);
        END IF;
        IF p_from IS NOT NULL THEN
            INSERT INTO cxone_conversations (customer_number, business_number,
                                             conversation_id, status, updated_at)
            VALUES (p_to, p_from, p_conversation_id, 'OPEN', now())
            ON CONFLICT (customer_number, business_number) DO UPDATE SET
                conversation_id = EXCLUDED.conversation_id, status = 'OPEN',
                updated_at = now();
        END IF;
    END IF;
    INSERT INTO audit_log (event, cxone_message_id, twilio_message_sid, phone_number,
                           to_state, source, details)
    VALUES (p_audit_event, p_message_id, p_sid, p_to, p_status, 'worker', p_audit_details);
    RETURN QUERY SELECT CASE WHEN p_complete THEN smsgw_complete_job(p_job_id, p_job_claims)
                             ELSE TRUE END,
        EXISTS (SELECT 1 FROM twilio_receipts r
                WHERE r.message_sid = p_sid AND r.applied_at IS NULL);
END;
$$;

CREATE FUNCTION smsgw_wake_dispatchers() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dispatcher_naps
               WHERE until > clock_timestamp() + interval '50 milliseconds') THEN
        PERFORM pg_notify('outbox', '');
    END IF;
END;
$$;

CREATE TABLE audit_log (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    event text NOT NULL,
    cxone_message_id text,
    twilio_message_sid text,
    phone_number text,
    from_state text,
    to_state text,
    reason text,
    source text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL
);

CREATE SEQUENCE audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE TABLE byoc_pending_adds (
    nonce text NOT NULL,
    access_token text NOT NULL,
    brand_id text,
    user_id text,
    back_url text NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE byoc_tokens (
    token_hash text NOT NULL,
    client_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE consent (
    phone_number text NOT NULL,
    scope text DEFAULT '*'::text NOT NULL,
    status text NOT NULL,
    source text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT consent_status_check CHECK ((status = ANY (ARRAY['opted_in'::text, 'opted_out'::text])))
);

CREATE TABLE consent_history (
    id bigint NOT NULL,
    phone_number text NOT NULL,
    scope text NOT NULL,
    status text NOT NULL,
    source text NOT NULL,
    evidence jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT consent_history_source_check CHECK ((source = ANY (ARRAY['keyword'::text, 'opt_out_type'::text, 'twilio_21610'::text, 'api'::text, 'cli'::text, 'import'::text, 'console'::text]))),
    CONSTRAINT consent_history_status_check CHECK ((status = ANY (ARRAY['opted_in'::text, 'opted_out'::text])))
);

CREATE SEQUENCE consent_history_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE consent_history_id_seq OWNED BY consent_history.id;

CREATE TABLE console_ended_sessions (
    session_id text NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE cxone_conversations (
    customer_number text NOT NULL,
    business_number text NOT NULL,
    conversation_id text NOT NULL,
    status text DEFAULT 'OPEN'::text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cxone_conversations_status_check CHECK ((status = ANY (ARRAY['OPEN'::text, 'CLOSED'::text])))
);

CREATE TABLE cxone_message_status (
    cxone_message_id text NOT NULL,
    status text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE cxone_status_updates (
    id bigint NOT NULL,
    cxone_message_id text NOT NULL,
    status text NOT NULL,
    reason_code text,
    reason_message text,
    external_id text,
    receipt_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    outcome text,
    CONSTRAINT cxone_status_updates_status_check CHECK ((status = ANY (ARRAY['SENT'::text, 'DELIVERED'::text, 'FAILED'::text, 'UNDELIVERABLE'::text])))
)
WITH (autovacuum_vacuum_scale_factor='0.05', autovacuum_analyze_scale_factor='0.05');

CREATE SEQUENCE cxone_status_updates_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE cxone_status_updates_id_seq OWNED BY cxone_status_updates.id;

CREATE TABLE dfo_channels (
    channel_id text NOT NULL,
    number text NOT NULL,
    name text,
    brand_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE dfo_replies (
    message_id text NOT NULL,
    channel_id text NOT NULL,
    thread_id text NOT NULL,
    fingerprint text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE UNLOGGED TABLE dispatcher_naps (
    worker_id text NOT NULL,
    until timestamp with time zone NOT NULL
);

CREATE TABLE idempotency_keys (
    key text NOT NULL,
    cxone_message_id text,
    state text NOT NULL,
    twilio_message_sid text,
    to_number text NOT NULL,
    from_number text,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    result jsonb,
    expires_at timestamp with time zone DEFAULT (now() + '24:00:00'::interval) NOT NULL,
    CONSTRAINT idempotency_keys_state_check CHECK ((state = ANY (ARRAY['in_flight'::text, 'sent'::text, 'failed'::text])))
)
WITH (autovacuum_vacuum_scale_factor='0.05');

CREATE TABLE inbound_messages (
    message_sid text NOT NULL,
    from_number text NOT NULL,
    to_number text NOT NULL,
    keyword text,
    num_media integer DEFAULT 0 NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE keyword_messages (
    message_sid text NOT NULL,
    phone_number text NOT NULL,
    keyword text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT keyword_messages_keyword_check CHECK ((keyword = ANY (ARRAY['opt_out'::text, 'opt_in'::text, 'help'::text])))
);

CREATE TABLE media (
    id bigint NOT NULL,
    token text NOT NULL,
    direction text NOT NULL,
    content_type text NOT NULL,
    data bytea NOT NULL,
    size integer NOT NULL,
    sha256 text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT media_check CHECK (((size > 0) AND (size = octet_length(data)))),
    CONSTRAINT media_content_type_check CHECK (((length(content_type) >= 3) AND (length(content_type) <= 255))),
    CONSTRAINT media_direction_check CHECK ((direction = ANY (ARRAY['outbound'::text, 'inbound'::text]))),
    CONSTRAINT media_sha256_check CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT media_token_check CHECK ((token ~ '^[A-Za-z0-9_-]{32,86}$'::text))
);
ALTER TABLE ONLY media ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE SEQUENCE media_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE media_id_seq OWNED BY media.id;

CREATE TABLE message_media (
    message_id text NOT NULL,
    media jsonb DEFAULT '[]'::jsonb NOT NULL,
    rejected text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE outbox (
    id bigint NOT NULL,
    kind text NOT NULL,
    dedupe_key text NOT NULL,
    ordering_key text,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    claims integer DEFAULT 0 NOT NULL,
    rerun boolean DEFAULT false NOT NULL,
    locked_by text,
    locked_at timestamp with time zone,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    slot timestamp with time zone,
    CONSTRAINT outbox_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'done'::text, 'dead'::text])))
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.02', autovacuum_vacuum_threshold='200', autovacuum_analyze_scale_factor='0.05', autovacuum_vacuum_cost_delay='0');

CREATE SEQUENCE outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;

CREATE TABLE poll_cursors (
    name text NOT NULL,
    cursor text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE reconciler_runs (
    name text NOT NULL,
    last_started_at timestamp with time zone,
    last_finished_at timestamp with time zone,
    last_result jsonb DEFAULT '{}'::jsonb NOT NULL
);

CREATE TABLE sms_gateway_state (
    cxone_conversation_id text NOT NULL,
    cxone_message_id text NOT NULL,
    twilio_message_sid text NOT NULL,
    twilio_status text DEFAULT 'queued'::text NOT NULL,
    direction text NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    to_number text,
    from_number text,
    error_code integer,
    attempts integer DEFAULT 1 NOT NULL,
    outcome text,
    final_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    reconciled_at timestamp with time zone,
    CONSTRAINT sms_gateway_state_direction_check CHECK ((direction = ANY (ARRAY['INBOUND'::text, 'OUTBOUND'::text])))
);

CREATE TABLE throttle_state (
    key text NOT NULL,
    tat timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    start_tat timestamp with time zone DEFAULT now() NOT NULL,
    last_start_at timestamp with time zone
)
WITH (fillfactor='50', autovacuum_vacuum_scale_factor='0.05');

CREATE TABLE twilio_receipts (
    id bigint NOT NULL,
    message_sid text NOT NULL,
    message_status text NOT NULL,
    error_code integer,
    source text DEFAULT 'callback'::text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_at timestamp with time zone,
    CONSTRAINT twilio_receipts_source_check CHECK ((source = ANY (ARRAY['callback'::text, 'reconcile'::text])))
)
WITH (autovacuum_vacuum_scale_factor='0.05');

CREATE SEQUENCE twilio_receipts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE twilio_receipts_id_seq OWNED BY twilio_receipts.id;

CREATE TABLE worker_heartbeats (
    worker_id text NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    beat_at timestamp with time zone DEFAULT now() NOT NULL,
    stopped_at timestamp with time zone,
    roles jsonb DEFAULT '{}'::jsonb NOT NULL
)
WITH (fillfactor='50');

ALTER TABLE ONLY audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq'::regclass);

ALTER TABLE ONLY consent_history ALTER COLUMN id SET DEFAULT nextval('consent_history_id_seq'::regclass);

ALTER TABLE ONLY cxone_status_updates ALTER COLUMN id SET DEFAULT nextval('cxone_status_updates_id_seq'::regclass);

ALTER TABLE ONLY media ALTER COLUMN id SET DEFAULT nextval('media_id_seq'::regclass);

ALTER TABLE ONLY outbox ALTER COLUMN id SET DEFAULT nextval('outbox_id_seq'::regclass);

ALTER TABLE ONLY twilio_receipts ALTER COLUMN id SET DEFAULT nextval('twilio_receipts_id_seq'::regclass);

ALTER TABLE ONLY audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY byoc_pending_adds
    ADD CONSTRAINT byoc_pending_adds_pkey PRIMARY KEY (nonce);

ALTER TABLE ONLY byoc_tokens
    ADD CONSTRAINT byoc_tokens_pkey PRIMARY KEY (token_hash);

ALTER TABLE ONLY consent_history
    ADD CONSTRAINT consent_history_pkey PRIMARY KEY (id);

ALTER TABLE ONLY consent
    ADD CONSTRAINT consent_pkey PRIMARY KEY (phone_number, scope);

ALTER TABLE ONLY console_ended_sessions
    ADD CONSTRAINT console_ended_sessions_pkey PRIMARY KEY (session_id);

ALTER TABLE ONLY cxone_conversations
    ADD CONSTRAINT cxone_conversations_pkey PRIMARY KEY (customer_number, business_number);

ALTER TABLE ONLY cxone_message_status
    ADD CONSTRAINT cxone_message_status_pkey PRIMARY KEY (cxone_message_id);

ALTER TABLE ONLY cxone_status_updates
    ADD CONSTRAINT cxone_status_updates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY dfo_channels
    ADD CONSTRAINT dfo_channels_pkey PRIMARY KEY (channel_id);

ALTER TABLE ONLY dfo_replies
    ADD CONSTRAINT dfo_replies_pkey PRIMARY KEY (message_id);

ALTER TABLE ONLY dispatcher_naps
    ADD CONSTRAINT dispatcher_naps_pkey PRIMARY KEY (worker_id);

ALTER TABLE ONLY idempotency_keys
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (key);

ALTER TABLE ONLY inbound_messages
    ADD CONSTRAINT inbound_messages_pkey PRIMARY KEY (message_sid);

ALTER TABLE ONLY keyword_messages
    ADD CONSTRAINT keyword_messages_pkey PRIMARY KEY (message_sid);

ALTER TABLE ONLY media
    ADD CONSTRAINT media_pkey PRIMARY KEY (id);

ALTER TABLE ONLY media
    ADD CONSTRAINT media_token_key UNIQUE (token);

ALTER TABLE ONLY message_media
    ADD CONSTRAINT message_media_pkey PRIMARY KEY (message_id);

ALTER TABLE ONLY outbox
    ADD CONSTRAINT outbox_dedupe_key_key UNIQUE (dedupe_key);

ALTER TABLE ONLY outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY poll_cursors
    ADD CONSTRAINT poll_cursors_pkey PRIMARY KEY (name);

ALTER TABLE ONLY reconciler_runs
    ADD CONSTRAINT reconciler_runs_pkey PRIMARY KEY (name);

ALTER TABLE ONLY sms_gateway_state
    ADD CONSTRAINT sms_gateway_state_pkey PRIMARY KEY (cxone_conversation_id, cxone_message_id);

ALTER TABLE ONLY sms_gateway_state
    ADD CONSTRAINT sms_gateway_state_twilio_message_sid_key UNIQUE (twilio_message_sid);

ALTER TABLE ONLY throttle_state
    ADD CONSTRAINT throttle_state_pkey PRIMARY KEY (key);

ALTER TABLE ONLY twilio_messages
    ADD CONSTRAINT twilio_messages_pkey PRIMARY KEY (sid);

ALTER TABLE ONLY twilio_receipts
    ADD CONSTRAINT twilio_receipts_message_sid_message_status_key UNIQUE (message_sid, message_status);

ALTER TABLE ONLY twilio_receipts
    ADD CONSTRAINT twilio_receipts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY worker_heartbeats
    ADD CONSTRAINT worker_heartbeats_pkey PRIMARY KEY (worker_id);

CREATE INDEX audit_log_message ON audit_log USING btree (cxone_message_id, id) WHERE (cxone_message_id IS NOT NULL);

CREATE INDEX audit_log_phone ON audit_log USING btree (phone_number, id) WHERE (phone_number IS NOT NULL);

CREATE INDEX audit_log_sends_at ON audit_log USING btree (at) WHERE (event = ANY (ARRAY['send.created'::text, 'send.adopted'::text, 'send.failed'::text, 'send.refused'::text, 'message.no_receipt'::text, 'job.retry'::text]));

CREATE INDEX audit_log_sid ON audit_log USING btree (twilio_message_sid, id) WHERE (twilio_message_sid IS NOT NULL);

CREATE INDEX byoc_tokens_expiry ON byoc_tokens USING btree (expires_at);

CREATE INDEX consent_history_number ON consent_history USING btree (phone_number, id);

CREATE INDEX cxone_status_updates_finished ON cxone_status_updates USING btree (finished_at) WHERE (finished_at IS NOT NULL);

CREATE INDEX cxone_status_updates_pending ON cxone_status_updates USING btree (cxone_message_id, id) WHERE (finished_at IS NULL);

CREATE INDEX dfo_channels_number ON dfo_channels USING btree (number);

CREATE INDEX dfo_replies_created ON dfo_replies USING btree (created_at);

CREATE INDEX dfo_replies_fingerprint ON dfo_replies USING btree (fingerprint, created_at);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys USING btree (expires_at);

CREATE INDEX inbound_messages_received ON inbound_messages USING btree (received_at);

CREATE INDEX media_expires_at ON media USING btree (expires_at);

CREATE INDEX outbox_dead ON outbox USING btree (updated_at) WHERE (state = 'dead'::text);

CREATE INDEX outbox_finished ON outbox USING btree (finished_at) WHERE (state = 'done'::text);

CREATE INDEX outbox_ordering ON outbox USING btree (ordering_key, id) WHERE ((state = 'queued'::text) AND (ordering_key IS NOT NULL));

CREATE INDEX outbox_runnable ON outbox USING btree (run_at, id) WHERE (state = 'queued'::text);

CREATE INDEX sms_gateway_state_awaiting_receipt ON sms_gateway_state USING btree (updated_at) WHERE ((direction = 'OUTBOUND'::text) AND (outcome IS NULL));

CREATE INDEX sms_gateway_state_message ON sms_gateway_state USING btree (cxone_message_id);

CREATE INDEX twilio_messages_message ON twilio_messages USING btree (cxone_message_id);

CREATE INDEX twilio_messages_parts ON twilio_messages USING btree (cxone_message_id, dispatch) WHERE (parts > 1);

CREATE INDEX twilio_receipts_received ON twilio_receipts USING btree (received_at);

CREATE INDEX twilio_receipts_unapplied ON twilio_receipts USING btree (message_sid) WHERE (applied_at IS NULL);

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION forbid_update_or_delete();

CREATE TRIGGER consent_history_append_only BEFORE DELETE OR UPDATE ON consent_history FOR EACH ROW EXECUTE FUNCTION forbid_update_or_delete();
