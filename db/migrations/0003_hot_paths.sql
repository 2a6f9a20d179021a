-- Hot paths as server-side functions: one round trip where there were a dozen.
--
-- The rules stay in Python (app/statuses.py decides ranks and finality, the
-- receipt and send services decide what follows); these functions only do the
-- writes in order, under the SID lock, in one statement. Shared pieces
-- (enqueue-or-rerun, complete, the sender's readiness) are functions too, and
-- the named queries call them, so each piece of SQL exists once.

-- Lifecycle rank of a message's current Twilio status (given by app/statuses.py).
ALTER TABLE twilio_messages ADD COLUMN status_rank SMALLINT NOT NULL DEFAULT 0;
-- When the last create of a sender started (pacing of fast senders).
ALTER TABLE throttle_state ADD COLUMN last_started_at TIMESTAMPTZ;

-- Insert a job, or bring back one that exists: a finished job is queued again now;
-- a job that is running is marked to run once more when it completes.
CREATE FUNCTION smsgw_enqueue_or_rerun(p_kind TEXT, p_dedupe_key TEXT, p_payload JSONB,
                                       p_run_at TIMESTAMPTZ, p_ordering_key TEXT)
RETURNS BIGINT LANGUAGE sql AS $$
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

-- Finish a claimed job (fenced by its claim count); queued again if work arrived meanwhile.
CREATE FUNCTION smsgw_complete_job(p_id BIGINT, p_claims INTEGER)
RETURNS BOOLEAN LANGUAGE sql AS $$
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

-- Queue a CXone status update for a message and make sure its status job runs.
CREATE FUNCTION smsgw_queue_cxone_update(p_message_id TEXT, p_status TEXT, p_reason_code TEXT,
                                         p_reason_message TEXT, p_external_id TEXT,
                                         p_receipt_at TIMESTAMPTZ)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cxone_status_updates (cxone_message_id, status, reason_code, reason_message,
                                      external_id, receipt_at)
    VALUES (p_message_id, p_status, p_reason_code, p_reason_message, p_external_id,
            COALESCE(p_receipt_at, now()));
    PERFORM smsgw_enqueue_or_rerun('cxone_status', 'cxone_status:' || p_message_id,
                                   jsonb_build_object('message_id', p_message_id), NULL, NULL);
    PERFORM pg_notify('outbox', '');
END;
$$;

-- Record one receipt for one SID and apply it when it moves the message forward.
-- p_rank comes from app/statuses.py. With p_receipt_id, apply a receipt stored
-- earlier (it arrived before its SID). With p_cxone_status (a final status), also
-- record the outcome and queue that CXone update when the receipt moves a mapped
-- reply forward; statuses that need Python afterwards (30008/30022 re-dispatch,
-- 21610 opt-out) pass none and are followed up in the caller's transaction.
-- result: duplicate | pending | stale | applied | final. The lock serialises
-- "receipt arrives" against "SID is stored".
CREATE FUNCTION smsgw_apply_receipt(p_sid TEXT, p_status TEXT, p_rank INTEGER, p_error INTEGER,
                                    p_from TEXT, p_source TEXT, p_receipt_id BIGINT,
                                    p_cxone_status TEXT, p_reason_code TEXT,
                                    p_reason_message TEXT)
RETURNS TABLE (result TEXT, cxone_message_id TEXT, to_number TEXT, from_number TEXT,
               purpose TEXT, dispatch INTEGER, previous_status TEXT, mapped BOOLEAN)
LANGUAGE plpgsql AS $$
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
    IF m.status_rank >= 4 OR p_rank <= m.status_rank THEN
        RETURN QUERY SELECT 'stale', m.cxone_message_id, m.to_number, m.from_number, m.purpose,
                            m.dispatch, m.status, FALSE;
        RETURN;
    END IF;
    UPDATE twilio_messages t SET status = p_status, status_rank = p_rank,
        error_code = COALESCE(p_error, t.error_code),
        from_number = COALESCE(p_from, t.from_number), updated_at = now()
    WHERE t.sid = p_sid;
    INSERT INTO audit_log (event, cxone_message_id, twilio_message_sid, from_state, to_state,
                           reason, source)
    VALUES ('message.status', m.cxone_message_id, p_sid, m.status, p_status,
            p_error::TEXT, p_source);
    UPDATE sms_gateway_state s SET twilio_status = p_status,
        error_code = COALESCE(p_error, s.error_code),
        from_number = COALESCE(p_from, s.from_number),
        outcome = CASE WHEN p_cxone_status IS NOT NULL THEN p_status ELSE s.outcome END,
        final_at = CASE WHEN p_cxone_status IS NOT NULL THEN now() ELSE s.final_at END,
        updated_at = now()
    WHERE s.twilio_message_sid = p_sid;
    v_mapped := FOUND;
    IF p_cxone_status IS NOT NULL AND v_mapped AND m.purpose = 'reply'
            AND m.cxone_message_id IS NOT NULL THEN
        PERFORM smsgw_queue_cxone_update(m.cxone_message_id, p_cxone_status, p_reason_code,
                                         p_reason_message, NULL, NULL);
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

-- Everything that follows a created (or adopted) message, in one statement:
-- the sender is free again, the idempotency key is done, the SID is mapped, CXone
-- gets SENT, the conversation is remembered, the audit trail grows and the job is
-- finished (fenced). Returns whether the job was still ours and whether receipts
-- that beat this commit wait to be applied.
CREATE FUNCTION smsgw_record_sent(
    p_sid TEXT, p_status TEXT, p_status_rank INTEGER, p_message_id TEXT,
    p_conversation_id TEXT, p_purpose TEXT, p_dispatch INTEGER, p_to TEXT, p_from TEXT,
    p_adopted BOOLEAN, p_idempotency_key TEXT, p_throttle_key TEXT, p_job_id BIGINT,
    p_job_claims INTEGER, p_audit_event TEXT, p_audit_details JSONB)
RETURNS TABLE (completed BOOLEAN, receipts_waiting BOOLEAN)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_sid));
    UPDATE throttle_state SET last_answered_at = now(), in_flight_until = NULL,
        updated_at = now()
    WHERE key = p_throttle_key;
    UPDATE idempotency_keys SET state = 'sent', twilio_message_sid = p_sid,
        result = jsonb_build_object('status', p_status, 'from', p_from)
    WHERE key = p_idempotency_key;
    INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, purpose,
                                 dispatch, to_number, from_number, status, status_rank, adopted)
    VALUES (p_sid, p_message_id, p_conversation_id, p_purpose, p_dispatch, p_to, p_from,
            p_status, p_status_rank, p_adopted)
    ON CONFLICT (sid) DO NOTHING;
    IF p_purpose = 'reply' AND p_message_id IS NOT NULL AND p_conversation_id IS NOT NULL THEN
        INSERT INTO sms_gateway_state AS s (cxone_conversation_id, cxone_message_id,
            twilio_message_sid, twilio_status, direction, to_number, from_number, attempts)
        VALUES (p_conversation_id, p_message_id, p_sid, p_status, 'OUTBOUND', p_to, p_from,
                p_dispatch)
        ON CONFLICT (cxone_conversation_id, cxone_message_id) DO UPDATE SET
            twilio_message_sid = EXCLUDED.twilio_message_sid,
            twilio_status = EXCLUDED.twilio_status,
            from_number = EXCLUDED.from_number,
            attempts = EXCLUDED.attempts,
            error_code = NULL, outcome = NULL, final_at = NULL,
            updated_at = now();
        PERFORM smsgw_queue_cxone_update(p_message_id, 'SENT', NULL, NULL, p_sid, NULL);
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
    RETURN QUERY SELECT smsgw_complete_job(p_job_id, p_job_claims),
        EXISTS (SELECT 1 FROM twilio_receipts r
                WHERE r.message_sid = p_sid AND r.applied_at IS NULL);
END;
$$;

-- Pacing. A send waits until its sender is free. For a slow sender (spacing of
-- 0.2 s or more: long codes, toll-free) "free" means nothing in flight and
-- Twilio's answer to the previous create one spacing back, so the spacing holds
-- at Twilio's end whatever the jitter. A fast sender (a short code at 100/s:
-- spacing 10 ms) cannot wait for each answer (that would cap it at 1/latency),
-- so it only spaces the starts of its creates and may have several in flight.
-- Every writer locks sender rows in key order, before any conversation row.

-- The earliest instant a new send of this sender may start (-infinity: now);
-- NULL when a slow sender has a create in flight (free one spacing after its answer).
CREATE FUNCTION smsgw_sender_free_at(p_in_flight_until TIMESTAMPTZ,
                                     p_last_answered_at TIMESTAMPTZ,
                                     p_last_started_at TIMESTAMPTZ,
                                     p_spacing_s DOUBLE PRECISION)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_spacing_s >= 0.2 AND p_in_flight_until > now() THEN NULL
        WHEN p_spacing_s >= 0.2 THEN GREATEST(
            COALESCE(p_last_answered_at, '-infinity') + p_spacing_s * interval '1 second',
            COALESCE(p_last_started_at, '-infinity') + p_spacing_s * interval '1 second')
        ELSE COALESCE(p_last_started_at, '-infinity') + p_spacing_s * interval '1 second'
    END;
$$;

-- A reserved slot may be taken at once: it is due and the sender is free.
CREATE FUNCTION smsgw_takeable(p_tat TIMESTAMPTZ, p_in_flight_until TIMESTAMPTZ,
                               p_last_answered_at TIMESTAMPTZ, p_last_started_at TIMESTAMPTZ,
                               p_spacing_s DOUBLE PRECISION)
RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT p_tat <= now() AND smsgw_sender_free_at(p_in_flight_until, p_last_answered_at,
                                                   p_last_started_at, p_spacing_s) <= now();
$$;

-- Slots for a whole batch of send jobs at once: jobs of one sender get consecutive
-- slots (in the given order). With p_take (the caller holds these jobs: claim
-- time) the first job of an idle sender takes it now, and jobs whose slot is
-- further than p_lookahead_s away go back to the queue at it (fenced by their
-- claim count). Without it (enqueue time) no sender is taken and every job goes
-- to run_at = its slot. A backlog of thousands is booked in a few statements.
CREATE FUNCTION smsgw_place_sends(p_jobs JSONB, p_hold_s DOUBLE PRECISION,
                                  p_lookahead_s DOUBLE PRECISION, p_take BOOLEAN)
RETURNS TABLE (id BIGINT, slot TIMESTAMPTZ, started BOOLEAN, queued BOOLEAN,
               db_now TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH jobs AS (
        SELECT j.id, j.claims, j.key, j.spacing, j.ord
        FROM jsonb_to_recordset(p_jobs)
            AS j(id BIGINT, claims INTEGER, key TEXT, spacing DOUBLE PRECISION, ord INTEGER)
    ), keyed AS (
        SELECT jobs.key, max(jobs.spacing) AS spacing, count(*) AS n
        FROM jobs GROUP BY jobs.key
    ), advanced AS (
        INSERT INTO throttle_state AS t (key, tat, in_flight_until, last_started_at, updated_at)
        SELECT k.key, now() + k.n * k.spacing * interval '1 second',
               CASE WHEN p_take THEN now() + p_hold_s * interval '1 second' END,
               CASE WHEN p_take THEN now() END, now()
        FROM keyed k
        ORDER BY k.key  -- every writer locks sender rows in key order: no deadlocks
        ON CONFLICT (key) DO UPDATE SET
            tat = GREATEST(t.tat, now()) + (EXCLUDED.tat - now()),
            in_flight_until = CASE
                WHEN p_take AND smsgw_takeable(
                    t.tat, t.in_flight_until, t.last_answered_at, t.last_started_at,
                    (SELECT k2.spacing FROM keyed k2 WHERE k2.key = t.key))
                THEN now() + p_hold_s * interval '1 second' ELSE t.in_flight_until END,
            last_started_at = CASE
                WHEN p_take AND smsgw_takeable(
                    t.tat, t.in_flight_until, t.last_answered_at, t.last_started_at,
                    (SELECT k2.spacing FROM keyed k2 WHERE k2.key = t.key))
                THEN now() ELSE t.last_started_at END,
            updated_at = now()
        RETURNING t.key, t.tat, p_take AND t.last_started_at = now() AS taken
    ), slotted AS (
        SELECT jobs.id, jobs.claims, jobs.key,
               a.tat - (k.n - row_number() OVER (PARTITION BY jobs.key ORDER BY jobs.ord) + 1)
                       * jobs.spacing * interval '1 second' AS slot,
               a.taken AND row_number() OVER (PARTITION BY jobs.key ORDER BY jobs.ord) = 1
                   AS started
        FROM jobs JOIN keyed k ON k.key = jobs.key JOIN advanced a ON a.key = jobs.key
    ), requeued AS (
        UPDATE outbox o SET
            run_at = s.slot,
            payload = o.payload || jsonb_build_object('slot', s.slot, 'throttle_key', s.key),
            locked_by = CASE WHEN p_take THEN NULL ELSE o.locked_by END,
            updated_at = now()
        FROM slotted s
        WHERE o.id = s.id AND o.claims = s.claims AND o.state = 'queued'
          AND (NOT p_take
               OR (NOT s.started AND s.slot > now() + p_lookahead_s * interval '1 second'))
        RETURNING o.id
    )
    SELECT s.id, s.slot, s.started, EXISTS (SELECT 1 FROM requeued r WHERE r.id = s.id), now()
    FROM slotted s;
END;
$$;
