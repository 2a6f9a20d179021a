-- The message mapping (sms_gateway_state), every Twilio SID we hold, and receipts.

-- name: apply_receipt
-- See smsgw_apply_receipt (migration 0005): dedupe, lock, forward-only apply.
SELECT * FROM smsgw_apply_receipt(%(sid)s, %(status)s, %(rank)s, %(final)s, %(error_code)s,
                                  %(from)s, %(source)s, %(receipt_id)s, %(report_status)s,
                                  %(reason_code)s, %(reason_message)s, %(status_kind)s);

-- name: redispatch_facts
-- A 30008/30022 failure: the message, whether this SID is its current dispatch, and
-- its send job (the dedupe key of a reply's send job is the message id).
SELECT t.cxone_message_id, t.purpose, t.dispatch, t.from_number, t.to_number, t.final,
       t.parts,
       EXISTS (SELECT 1 FROM sms_gateway_state s WHERE s.twilio_message_sid = t.sid) AS mapped,
       o.state AS job_state, o.attempts AS job_attempts, o.payload AS job_payload
FROM twilio_messages t
LEFT JOIN outbox o ON o.dedupe_key = t.cxone_message_id
WHERE t.sid = %(sid)s;

-- name: lock_sid
-- Serialises "receipt arrives" against "SID is stored" for one SID, so a
-- callback that beats the commit is never left unapplied.
SELECT pg_advisory_xact_lock(hashtext(%(sid)s));

-- name: twilio_messages_of
SELECT * FROM twilio_messages WHERE cxone_message_id = %(message_id)s ORDER BY created_at;

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
