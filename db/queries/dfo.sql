-- DFO mode's state: tokens we issued, channels, accepted agent replies, pending Adds.

-- name: issue_token
INSERT INTO byoc_tokens (token_hash, client_id, expires_at)
VALUES (%(hash)s, %(client_id)s, now() + %(ttl_s)s * interval '1 second');

-- name: token_valid
SELECT EXISTS (SELECT 1 FROM byoc_tokens
               WHERE token_hash = %(hash)s AND expires_at > now()) AS valid;

-- name: channel_number
SELECT number FROM dfo_channels WHERE channel_id = %(channel_id)s;

-- name: number_channel
SELECT channel_id FROM dfo_channels WHERE number = %(number)s ORDER BY created_at LIMIT 1;

-- name: add_channel
INSERT INTO dfo_channels (channel_id, number, name, brand_id)
VALUES (%(channel_id)s, %(number)s, %(name)s, %(brand_id)s)
ON CONFLICT (channel_id) DO UPDATE SET number = EXCLUDED.number, name = EXCLUDED.name,
    brand_id = EXCLUDED.brand_id
RETURNING channel_id;

-- name: channels
SELECT channel_id, number, name, brand_id, created_at FROM dfo_channels ORDER BY created_at;

-- name: lock_fingerprint
-- Serialises two copies of one callback (CXone retrying while the first is answered).
SELECT pg_advisory_xact_lock(hashtext(%(fingerprint)s));

-- name: find_reply
-- The reply a callback repeats: same fingerprint within the window (any age when the
-- fingerprint is CXone's own id: window_s NULL).
SELECT message_id FROM dfo_replies
WHERE fingerprint = %(fingerprint)s
  AND (%(window_s)s::float IS NULL
       OR created_at > now() - %(window_s)s::float * interval '1 second')
ORDER BY created_at DESC LIMIT 1;

-- name: remember_reply
INSERT INTO dfo_replies (message_id, channel_id, thread_id, fingerprint)
VALUES (%(message_id)s, %(channel_id)s, %(thread_id)s, %(fingerprint)s);

-- name: save_pending_add
INSERT INTO byoc_pending_adds (nonce, access_token, brand_id, user_id, back_url, expires_at)
VALUES (%(nonce)s, %(access_token)s, %(brand_id)s, %(user_id)s, %(back_url)s,
        now() + %(ttl_s)s * interval '1 second');

-- name: take_pending_add
-- Used once: the row goes as it is read.
DELETE FROM byoc_pending_adds WHERE nonce = %(nonce)s AND expires_at > now()
RETURNING access_token, brand_id, user_id, back_url;
