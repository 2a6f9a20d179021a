-- The send job's statements (worker/send.py): what decides a send, the idempotency key
-- (seed §4: sha256 of message id, body and to; in_flight means a create may have
-- reached Twilio, so the next attempt looks it up first), and what follows a create.
-- The key is marked in flight by pacing.take, with the sender's turn.

-- name: before_send
-- Record the claim in the audit trail and read what decides the send: the consent
-- of the recipient, whether the message is already mapped to a SID, and its
-- idempotency key.
WITH claimed AS (
    INSERT INTO audit_log (event, cxone_message_id, phone_number, source, details)
    VALUES ('send.claimed', %(message_id)s, %(to)s, 'worker', %(details)s)
)
SELECT
    (SELECT status FROM consent WHERE phone_number = %(to)s AND scope = '*') AS consent,
    (SELECT max(attempts) FROM sms_gateway_state
     WHERE cxone_message_id = %(message_id)s AND direction = 'OUTBOUND') AS mapped_dispatches,
    k.state AS key_state, k.twilio_message_sid AS key_sid, k.started_at AS key_started_at,
    k.result AS key_result
FROM (SELECT 1) AS one
LEFT JOIN idempotency_keys k ON k.key = %(key)s AND k.expires_at > now();

-- name: finish_key
UPDATE idempotency_keys SET state = %(state)s, twilio_message_sid = %(sid)s, result = %(result)s
WHERE key = %(key)s;

-- name: forget_key
-- The create certainly did not happen (e.g. 429): the next attempt needs no lookup.
DELETE FROM idempotency_keys WHERE key = %(key)s AND state = 'in_flight';

-- name: sids_taken
SELECT sid FROM twilio_messages WHERE sid = ANY(%(sids)s);

-- name: record_sent
-- See smsgw_record_sent (migration 0005): everything after a create, one statement.
SELECT * FROM smsgw_record_sent(%(sid)s, %(status)s, %(status_rank)s, %(message_id)s,
    %(conversation_id)s, %(purpose)s, %(dispatch)s, %(to)s, %(from)s, %(adopted)s,
    %(idempotency_key)s, %(report_to)s, %(report_status)s, %(status_kind)s, %(job_id)s,
    %(job_claims)s, %(audit_event)s, %(audit_details)s);
