-- The message mapping (sms_gateway_state), every Twilio SID we hold, and receipts.

-- name: apply_receipt
-- See smsgw_apply_receipt (migration 0003): dedupe, lock, forward-only apply.
SELECT * FROM smsgw_apply_receipt(%(sid)s, %(status)s, %(rank)s, %(error_code)s, %(from)s,
                                  %(source)s, %(receipt_id)s, %(cxone_status)s,
                                  %(reason_code)s, %(reason_message)s);

-- name: record_sent
-- See smsgw_record_sent (migration 0003): everything after a create, one statement.
SELECT * FROM smsgw_record_sent(%(sid)s, %(status)s, %(status_rank)s, %(message_id)s,
    %(conversation_id)s, %(purpose)s, %(dispatch)s, %(to)s, %(from)s, %(adopted)s,
    %(idempotency_key)s, %(throttle_key)s, %(job_id)s, %(job_claims)s, %(audit_event)s,
    %(audit_details)s);

-- name: set_outcome
-- A final receipt settled the message (not re-dispatched): record the outcome.
UPDATE sms_gateway_state SET outcome = %(outcome)s, final_at = now(), updated_at = now()
WHERE twilio_message_sid = %(sid)s;

-- name: lock_sid
-- Serialises "receipt arrives" against "SID is stored" for one SID, so a
-- callback that beats the commit is never left unapplied.
SELECT pg_advisory_xact_lock(hashtext(%(sid)s));

-- name: twilio_messages_of
SELECT * FROM twilio_messages WHERE cxone_message_id = %(message_id)s ORDER BY created_at;

-- name: sids_taken
SELECT sid FROM twilio_messages WHERE sid = ANY(%(sids)s);

-- name: record_inbound
INSERT INTO sms_gateway_state (cxone_conversation_id, cxone_message_id, twilio_message_sid,
                               twilio_status, direction, to_number, from_number, outcome,
                               final_at)
VALUES (%(conversation_id)s, %(message_id)s, %(sid)s, 'received', 'INBOUND', %(to)s, %(from)s,
        'received', now())
ON CONFLICT DO NOTHING;

-- name: state_of_message
SELECT * FROM sms_gateway_state WHERE cxone_message_id = %(message_id)s AND direction = 'OUTBOUND';

-- name: unapplied_receipts
SELECT * FROM twilio_receipts WHERE message_sid = %(sid)s AND applied_at IS NULL ORDER BY id;

-- name: receipts_of
SELECT * FROM twilio_receipts WHERE message_sid = ANY(%(sids)s) ORDER BY id;

-- name: insert_inbound
-- Inbound dedupe on MessageSid: Twilio may deliver the same webhook twice.
INSERT INTO inbound_messages (message_sid, from_number, to_number, keyword, num_media)
VALUES (%(sid)s, %(from)s, %(to)s, %(keyword)s, %(num_media)s)
ON CONFLICT (message_sid) DO NOTHING
RETURNING message_sid;

-- name: insert_keyword
-- Keywords apply once ever: this row is never trimmed (see migration 0004).
INSERT INTO keyword_messages (message_sid, phone_number, keyword)
VALUES (%(sid)s, %(phone)s, %(keyword)s)
ON CONFLICT (message_sid) DO NOTHING
RETURNING message_sid;
