-- Seed §4 idempotency keys: sha256(cxone_message_id:body:to), kept 24 h.

-- name: start
-- Record that a create is about to be sent. A row left in_flight means the
-- create may have reached Twilio: the next attempt looks it up first.
INSERT INTO idempotency_keys AS k (key, cxone_message_id, state, to_number, from_number,
                                   started_at, expires_at)
VALUES (%(key)s, %(message_id)s, 'in_flight', %(to)s, %(from)s, now(),
        now() + interval '24 hours')
ON CONFLICT (key) DO UPDATE SET
    state = 'in_flight', started_at = now(), from_number = EXCLUDED.from_number,
    expires_at = now() + interval '24 hours'
WHERE k.state = 'in_flight' OR k.expires_at <= now()
RETURNING started_at;

-- name: finish
UPDATE idempotency_keys SET state = %(state)s, twilio_message_sid = %(sid)s, result = %(result)s
WHERE key = %(key)s;

-- name: forget
-- The create certainly did not happen (e.g. 429): the next attempt needs no lookup.
DELETE FROM idempotency_keys WHERE key = %(key)s AND state = 'in_flight';
