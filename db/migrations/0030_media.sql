-- Attachments the gateway fetched once and serves itself at /media/{token}
-- (app/media.py fetches and stores, app/media_routes.py serves).
--
-- Outbound: a CXone attachment is fetched when the reply is accepted and handed to
-- Twilio as {PUBLIC_BASE_URL}/media/{token}, so a short-lived signed CXone URL cannot
-- expire while the reply waits for its pacing slot. Inbound: a Twilio MediaUrl is
-- fetched with Twilio's credentials and handed to CXone the same way. The token is the
-- capability: secrets.token_urlsafe(32), 256 random bits, unique; it serves that one
-- file and nothing else, and only until expires_at.
--
-- Why Postgres: the gateway has no other store and needs none for this. A message has
-- at most 10 files and 5 MB in total (Twilio's MMS limit, checked before the insert);
-- bytea values that large are TOASTed out of line, so the table's own pages stay small
-- and a scan of expires_at never reads the bytes. STORAGE EXTERNAL skips compression:
-- images and video are compressed already. Retention bounds the volume: rows live
-- MEDIA_RETENTION_S (default 7 days) and housekeeping deletes expired ones in batches
-- (media.delete_expired); the worst case is 5 MB x the messages with media in that
-- window, so size the disk for the MMS traffic expected.
--
-- Python decides the retention (expires_at = now() + the seconds it passes in); SQL
-- only compares expires_at with now().

CREATE TABLE media (
    id BIGSERIAL PRIMARY KEY,
    token TEXT NOT NULL UNIQUE CHECK (token ~ '^[A-Za-z0-9_-]{32,86}$'),
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    content_type TEXT NOT NULL CHECK (length(content_type) BETWEEN 3 AND 255),
    data BYTEA NOT NULL,
    size INTEGER NOT NULL CHECK (size > 0 AND size = octet_length(data)),
    sha256 TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE media ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX media_expires_at ON media (expires_at);
