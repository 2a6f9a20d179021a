-- Receipts: one statement for nearly every callback, final ones included.
--
-- The caller (app/receipts.py) now passes the CXone update a final status maps
-- to; the function records the outcome and queues that update itself when the
-- message is a mapped reply. Statuses that need Python afterwards (30008/30022
-- re-dispatch, 21610 opt-out) pass no update and are followed up in the
-- caller's transaction, as before. The receipt row is written once, already
-- marked applied when its SID is known.

DROP FUNCTION smsgw_apply_receipt(TEXT, TEXT, INTEGER, INTEGER, TEXT, TEXT, BIGINT);

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
