-- Message content: segments, long replies sent in parts, media kept for Twilio and CXone.
--
-- Rules that live in SQL from here on (and only here): a reply sent in parts reports
-- once, when every part is final: DELIVERED when every part is delivered, otherwise
-- the first part's failure (smsgw_apply_part_receipt). Each part's own report is
-- decided in Python (app/receipts.py) and passed in, as for any message.

ALTER TABLE twilio_messages
    ADD COLUMN part SMALLINT NOT NULL DEFAULT 1,     -- 1..parts
    ADD COLUMN parts SMALLINT NOT NULL DEFAULT 1,    -- a long reply split in parts
    ADD COLUMN segments SMALLINT,                    -- what Twilio bills and paces
    ADD COLUMN encoding TEXT,                        -- GSM-7 | UCS-2
    ADD COLUMN final_report JSONB;                   -- a part's report, kept until all are final
CREATE INDEX twilio_messages_parts ON twilio_messages (cxone_message_id, dispatch)
    WHERE parts > 1;

-- An agent reply's attachments, fetched when it was accepted: the public /media/ URLs
-- Twilio is given, or why they were refused (the reply then fails media_rejected).
CREATE TABLE message_media (
    message_id TEXT PRIMARY KEY,
    media JSONB NOT NULL DEFAULT '[]'::jsonb,
    rejected TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

DROP FUNCTION smsgw_apply_receipt(TEXT, TEXT, INTEGER, BOOLEAN, INTEGER, TEXT, TEXT, BIGINT,
                                  TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION smsgw_record_sent(TEXT, TEXT, INTEGER, TEXT, TEXT, TEXT, INTEGER, TEXT, TEXT,
                                BOOLEAN, TEXT, TEXT, TEXT, TEXT, BIGINT, INTEGER, TEXT, JSONB);

-- One part of a long reply reached a status (its row is updated already): keep its
-- report; when every part is final, the message's outcome and its one report to CXone.
-- A lock per message makes the last part to finish see all the others.
CREATE FUNCTION smsgw_apply_part_receipt(m twilio_messages, p_status TEXT, p_error INTEGER,
                                         p_from TEXT, p_report_status TEXT,
                                         p_reason_code TEXT, p_reason_message TEXT,
                                         p_status_kind TEXT)
RETURNS TABLE (result TEXT, cxone_message_id TEXT, to_number TEXT, from_number TEXT,
               purpose TEXT, dispatch INTEGER, previous_status TEXT, mapped BOOLEAN)
LANGUAGE plpgsql AS $$
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

-- As in 0005, plus the parts of a long reply: the first maps the message and reports
-- SENT; only the last completes the job.
CREATE FUNCTION smsgw_record_sent(
    p_sid TEXT, p_status TEXT, p_status_rank INTEGER, p_message_id TEXT,
    p_conversation_id TEXT, p_purpose TEXT, p_dispatch INTEGER, p_to TEXT, p_from TEXT,
    p_adopted BOOLEAN, p_idempotency_key TEXT, p_report_to TEXT, p_report_status TEXT,
    p_status_kind TEXT, p_job_id BIGINT, p_job_claims INTEGER, p_audit_event TEXT,
    p_audit_details JSONB, p_part INTEGER, p_parts INTEGER, p_segments INTEGER,
    p_encoding TEXT, p_complete BOOLEAN)
RETURNS TABLE (completed BOOLEAN, receipts_waiting BOOLEAN)
LANGUAGE plpgsql AS $$
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
