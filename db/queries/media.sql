-- Attachments served at /media/<token> (see db/migrations/0030_media.sql).
-- A row is live while expires_at > now(); the same comparison everywhere.

-- name: insert
INSERT INTO media (token, direction, content_type, data, size, sha256, expires_at)
VALUES (%(token)s, %(direction)s, %(content_type)s, %(data)s, %(size)s, %(sha256)s,
        now() + %(retention_s)s * interval '1 second')
RETURNING id;

-- name: find_live
SELECT content_type, data, size,
       GREATEST(0, floor(extract(epoch FROM expires_at - now())))::integer AS ttl_s
FROM media WHERE token = %(token)s AND expires_at > now();

-- name: find_live_meta
SELECT content_type, size,
       GREATEST(0, floor(extract(epoch FROM expires_at - now())))::integer AS ttl_s
FROM media WHERE token = %(token)s AND expires_at > now();

-- name: delete_expired
DELETE FROM media WHERE id IN (
    SELECT id FROM media WHERE expires_at <= now() LIMIT %(batch)s);

-- name: keep_reply_media
-- An agent reply's attachments as Twilio will be given them (or why they were refused).
INSERT INTO message_media (message_id, media, rejected)
VALUES (%(message_id)s, %(media)s, %(rejected)s)
ON CONFLICT (message_id) DO UPDATE SET media = EXCLUDED.media, rejected = EXCLUDED.rejected;
