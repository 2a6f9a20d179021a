-- The message mapping (sms_gateway_state), every Twilio SID we hold, and receipts.

-- name: lock_sid
-- Serialises "receipt arrives" against "SID is stored" for one SID, so a
-- callback that beats the commit is never left unapplied.
SELECT pg_advisory_xact_lock(hashtext(%(sid)s));

-- name: insert_twilio_message
INSERT INTO twilio_messages (sid, cxone_message_id, cxone_conversation_id, purpose, dispatch,
                             to_number, from_number, status, adopted)
VALUES (%(sid)s, %(message_id)s, %(conversation_id)s, %(purpose)s, %(dispatch)s, %(to)s,
        %(from)s, %(status)s, %(adopted)s)
ON CONFLICT (sid) DO NOTHING
RETURNING sid;

-- name: twilio_message_for_update
SELECT * FROM twilio_messages WHERE sid = %(sid)s FOR UPDATE;

-- name: twilio_messages_of
SELECT * FROM twilio_messages WHERE cxone_message_id = %(message_id)s ORDER BY created_at;

-- name: set_twilio_message_status
UPDATE twilio_messages SET status = %(status)s, error_code = COALESCE(%(error_code)s, error_code),
    from_number = COALESCE(%(from)s, from_number), updated_at = now()
WHERE sid = %(sid)s;

-- name: sids_taken
SELECT sid FROM twilio_messages WHERE sid = ANY(%(sids)s);

-- name: record_outbound
-- Map a CXone message to its (current) Twilio SID; a re-dispatch replaces the SID.
INSERT INTO sms_gateway_state AS s (cxone_conversation_id, cxone_message_id, twilio_message_sid,
                                    twilio_status, direction, to_number, from_number, attempts)
VALUES (%(conversation_id)s, %(message_id)s, %(sid)s, %(status)s, 'OUTBOUND', %(to)s, %(from)s,
        %(dispatch)s)
ON CONFLICT (cxone_conversation_id, cxone_message_id) DO UPDATE SET
    twilio_message_sid = EXCLUDED.twilio_message_sid,
    twilio_status = EXCLUDED.twilio_status,
    from_number = EXCLUDED.from_number,
    attempts = EXCLUDED.attempts,
    error_code = NULL, outcome = NULL, final_at = NULL,
    updated_at = now();

-- name: record_inbound
INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id, twilio_message_sid,
                               twilio_status, direction, to_number, from_number, outcome,
                               final_at)
VALUES (%(conversation_id)s, %(message_id)s, %(sid)s, 'received', 'INBOUND', %(to)s, %(from)s,
        'received', now())
ON CONFLICT DO NOTHING;

-- name: state_of_message
SELECT * FROM sms_gateway_state WHERE cxone_message_id = %(message_id)s AND direction = 'OUTBOUND';

-- name: state_of_sid
SELECT * FROM sms_gateway_state WHERE twilio_message_sid = %(sid)s;

-- name: set_state_status
UPDATE sms_gateway_state SET
    twilio_status = %(status)s,
    error_code = COALESCE(%(error_code)s, error_code),
    from_number = COALESCE(%(from)s, from_number),
    outcome = COALESCE(%(outcome)s, outcome),
    final_at = CASE WHEN %(outcome)s::text IS NULL THEN final_at ELSE now() END,
    updated_at = now()
WHERE twilio_message_sid = %(sid)s;

-- name: insert_receipt
-- Receipt dedupe on (MessageSid, MessageStatus); the row is also the history.
INSERT INTO twilio_receipts (message_sid, message_status, error_code, source)
VALUES (%(sid)s, %(status)s, %(error_code)s, %(source)s)
ON CONFLICT (message_sid, message_status) DO NOTHING
RETURNING id;

-- name: unapplied_receipts
SELECT * FROM twilio_receipts WHERE message_sid = %(sid)s AND applied_at IS NULL ORDER BY id;

-- name: mark_receipt_applied
UPDATE twilio_receipts SET applied_at = now() WHERE id = %(id)s;

-- name: receipts_of
SELECT * FROM twilio_receipts WHERE message_sid = ANY(%(sids)s) ORDER BY id;

-- name: insert_inbound
-- Inbound dedupe on MessageSid: Twilio may deliver the same webhook twice.
INSERT INTO inbound_messages (message_sid, from_number, to_number, keyword, num_media)
VALUES (%(sid)s, %(from)s, %(to)s, %(keyword)s, %(num_media)s)
ON CONFLICT (message_sid) DO NOTHING
RETURNING message_sid;
