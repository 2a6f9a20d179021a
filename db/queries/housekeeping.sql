-- Housekeeping: delete old rows in small batches (short transactions, no long locks).
-- The audit trail is never deleted; the message mapping is kept (it is the record).

-- name: done_jobs
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE state = 'done' AND finished_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: expired_idempotency_keys
DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys WHERE expires_at < now() LIMIT %(batch)s);

-- name: old_receipts
DELETE FROM twilio_receipts WHERE id IN (
    SELECT id FROM twilio_receipts
    WHERE received_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: old_inbound
DELETE FROM inbound_messages WHERE message_sid IN (
    SELECT message_sid FROM inbound_messages
    WHERE received_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: old_status_updates
DELETE FROM cxone_status_updates WHERE id IN (
    SELECT id FROM cxone_status_updates
    WHERE finished_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: old_heartbeats
DELETE FROM worker_heartbeats WHERE worker_id IN (
    SELECT worker_id FROM worker_heartbeats
    WHERE beat_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: idle_throttle_keys
DELETE FROM throttle_state WHERE key IN (
    SELECT key FROM throttle_state
    WHERE updated_at < now() - %(retention_s)s * interval '1 second'
      AND tat < now()
    LIMIT %(batch)s);

-- name: expired_byoc_tokens
DELETE FROM byoc_tokens WHERE token_hash IN (
    SELECT token_hash FROM byoc_tokens WHERE expires_at < now() LIMIT %(batch)s);

-- name: old_dfo_replies
-- A DFO reply's registry row (its channel, for status PUTs; its fingerprint, for
-- retries) outlives its messages' receipts by the dedupe retention.
DELETE FROM dfo_replies WHERE message_id IN (
    SELECT message_id FROM dfo_replies
    WHERE created_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);

-- name: expired_pending_adds
DELETE FROM byoc_pending_adds WHERE nonce IN (
    SELECT nonce FROM byoc_pending_adds WHERE expires_at < now() LIMIT %(batch)s);

-- name: old_message_media
DELETE FROM message_media WHERE message_id IN (
    SELECT message_id FROM message_media
    WHERE created_at < now() - %(retention_s)s * interval '1 second'
    LIMIT %(batch)s);
