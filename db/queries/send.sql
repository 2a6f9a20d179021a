-- The send job's reads, in one round trip.

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
