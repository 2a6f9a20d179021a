-- One home per concept: pacing by conformance, decisions passed in, kinds as parameters.
--
-- Which rules live where, from this migration on:
-- * Python decides every rule: a status's rank and whether it is final
--   (app/statuses.py), what a final receipt reports to CXone and whether a failure
--   is sent again (app/receipts.py), which messages report to CXone at all (replies,
--   not HELP answers: app/jobs.py), the pacing weights and tolerance (app/pacing.py),
--   job kinds (app/jobs.py) and how long an idempotency key lives.
-- * The functions below only do the writes those decisions imply, in order, under
--   the SID lock, in one statement. The one condition they test themselves is data:
--   a message moves only forward (by the rank it was given) and never once final,
--   and only the dispatch a message is mapped to reports to CXone.

-- Pacing: GCRA on bookings (tat) and on actual starts (start_tat); see
-- db/queries/pacing.sql. A send no longer waits for Twilio's answer to the previous.
DROP FUNCTION smsgw_place_sends(JSONB, DOUBLE PRECISION, DOUBLE PRECISION, BOOLEAN);
DROP FUNCTION smsgw_takeable(TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ,
                             DOUBLE PRECISION);
DROP FUNCTION smsgw_sender_free_at(TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, DOUBLE PRECISION);
ALTER TABLE throttle_state
    DROP COLUMN in_flight_until,
    DROP COLUMN last_answered_at,
    DROP COLUMN last_started_at,
    ADD COLUMN start_tat TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN last_start_at TIMESTAMPTZ;
-- A send's booked slot (NULL: not booked yet).
ALTER TABLE outbox ADD COLUMN slot TIMESTAMPTZ;

-- Decisions stored with the message when Python makes them.
ALTER TABLE twilio_messages
    ADD COLUMN final BOOLEAN NOT NULL DEFAULT FALSE,  -- its status is final (app/statuses.py)
    ADD COLUMN report_to TEXT;                         -- message id CXone hears about, if any
UPDATE twilio_messages SET final = status_rank >= 4,
    report_to = CASE WHEN purpose = 'reply' THEN cxone_message_id END;

DROP FUNCTION smsgw_record_sent(TEXT, TEXT, INTEGER, TEXT, TEXT, TEXT, INTEGER, TEXT, TEXT,
                                BOOLEAN, TEXT, TEXT, BIGINT, INTEGER, TEXT, JSONB);
DROP FUNCTION smsgw_apply_receipt(TEXT, TEXT, INTEGER, INTEGER, TEXT, TEXT, BIGINT, TEXT,
                                  TEXT, TEXT);
DROP FUNCTION smsgw_queue_cxone_update(TEXT, TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ);

-- Queue a status report for CXone and make sure the message's status job (of kind
-- p_kind; its dedupe key is "<kind>:<message id>", as app/jobs.py StatusJob) runs.
CREATE FUNCTION smsgw_queue_status_report(p_kind TEXT, p_message_id TEXT, p_status TEXT,
                                          p_reason_code TEXT, p_reason_message TEXT,
                                          p_external_id TEXT, p_at TIMESTAMPTZ)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cxone_status_updates (cxone_message_id, status, reason_code, reason_message,
                                      external_id, receipt_at)
    VALUES (p_message_id, p_status, p_reason_code, p_reason_message, p_external_id,
            COALESCE(p_at, now()));
    PERFORM smsgw_enqueue_or_rerun(p_kind, p_kind || ':' || p_message_id,
                                   jsonb_build_object('message_id', p_message_id), NULL, NULL);
    PERFORM pg_notify('outbox', '');
END;
$$;

-- Record one receipt for one SID and apply it when it moves the message forward.
-- p_rank and p_final come from app/statuses.py; p_report_status (and its reason) is
-- what app/receipts.py decided CXone should hear if this receipt ends the message
-- (NULL: nothing, e.g. a failure that is sent again). With p_receipt_id, apply a
-- receipt stored earlier (it arrived before its SID). result: duplicate | pending |
-- stale | applied | final. The lock serialises "receipt arrives" against "SID is stored".
CREATE FUNCTION smsgw_apply_receipt(p_sid TEXT, p_status TEXT, p_rank INTEGER,
                                    p_final BOOLEAN, p_error INTEGER, p_from TEXT,
                                    p_source TEXT, p_receipt_id BIGINT, p_report_status TEXT,
                                    p_reason_code TEXT, p_reason_message TEXT,
                                    p_status_kind TEXT)
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

-- Everything that follows a created (or adopted) message, in one statement: the
-- idempotency key is done, the SID is mapped, CXone hears p_report_status (SENT; NULL
-- for a message that reports to no one), the conversation is remembered, the audit
-- trail grows and the job is finished (fenced). Returns whether the job was still ours
-- and whether receipts that beat this commit wait to be applied.
CREATE FUNCTION smsgw_record_sent(
    p_sid TEXT, p_status TEXT, p_status_rank INTEGER, p_message_id TEXT,
    p_conversation_id TEXT, p_purpose TEXT, p_dispatch INTEGER, p_to TEXT, p_from TEXT,
    p_adopted BOOLEAN, p_idempotency_key TEXT, p_report_to TEXT, p_report_status TEXT,
    p_status_kind TEXT, p_job_id BIGINT, p_job_claims INTEGER, p_audit_event TEXT,
    p_audit_details JSONB)
RETURNS TABLE (completed BOOLEAN, receipts_waiting BOOLEAN)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_sid));
    UPDATE idempotency_keys SET state = 'sent', twilio_message_sid = p_sid,
        result = jsonb_build_object('status', p_status, 'from', p_from)
    WHERE key = p_idempotency_key;
    INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, purpose,
                                 dispatch, to_number, from_number, status, status_rank,
                                 adopted, report_to)
    VALUES (p_sid, p_message_id, p_conversation_id, p_purpose, p_dispatch, p_to, p_from,
            p_status, p_status_rank, p_adopted, p_report_to)
    ON CONFLICT (sid) DO NOTHING;
    IF p_report_to IS NOT NULL AND p_conversation_id IS NOT NULL THEN
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
    RETURN QUERY SELECT smsgw_complete_job(p_job_id, p_job_claims),
        EXISTS (SELECT 1 FROM twilio_receipts r
                WHERE r.message_sid = p_sid AND r.applied_at IS NULL);
END;
$$;
