-- The send job's statements (worker/send.py): what decides a send, the idempotency key
-- (seed §4: sha256 of message id, body and to; in_flight means a create may have
-- reached Twilio, so the next attempt looks it up first), and what follows a create.
-- The key is marked in flight by pacing.take, with the sender's turn.

-- name: before_send
-- Record the claim in the audit trail and read what decides the send: the consent
-- of the recipient, whether the message is already mapped to a SID (and how many
-- parts of a long reply this dispatch created), its stored attachments, and the
-- idempotency keys of its parts (one key for a message sent whole).
WITH claimed AS (
    INSERT INTO audit_log (event, cxone_message_id, phone_number, source, details)
    VALUES ('send.claimed', %(message_id)s, %(to)s, 'worker', %(details)s)
)
SELECT
    (SELECT status FROM consent WHERE phone_number = %(to)s AND scope = '*') AS consent,
    (SELECT max(attempts) FROM sms_gateway_state
     WHERE cxone_message_id = %(message_id)s AND direction = 'OUTBOUND') AS mapped_dispatches,
    (SELECT count(*) FROM twilio_messages
     WHERE cxone_message_id = %(message_id)s AND dispatch = %(dispatch)s) AS created_parts,
    (SELECT jsonb_build_object('media', media, 'rejected', rejected) FROM message_media
     WHERE message_id = %(message_id)s) AS media,
    (SELECT jsonb_object_agg(k.key, jsonb_build_object(
                'state', k.state, 'sid', k.twilio_message_sid, 'started_at', k.started_at,
                'result', k.result))
     FROM idempotency_keys k
     WHERE k.key = ANY(%(keys)s::text[]) AND k.expires_at > now()) AS keys;

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
    %(job_claims)s, %(audit_event)s, %(audit_details)s, %(part)s, %(parts)s, %(segments)s,
    %(encoding)s, %(complete)s);
