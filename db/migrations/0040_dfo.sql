-- CXONE_MODE=dfo: a real tenant's DFO 3.0 "Bring Your Own Channel" integration
-- (docs/contracts/cxone-dfo.md).

-- Tokens we issued to CXone at /byoc/1.0/token, stored as their sha256 (never the
-- token): valid on every web process until they expire (BYOC_TOKEN_TTL_S).
CREATE TABLE byoc_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX byoc_tokens_expiry ON byoc_tokens (expires_at);

-- BYOC channels created through the Add action (DFO_CHANNELS joins these): which of
-- our Twilio numbers serves each.
CREATE TABLE dfo_channels (
    channel_id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    name TEXT,
    brand_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX dfo_channels_number ON dfo_channels (number);

-- Agent replies CXone pushed: the id we answered with (every later status PUT's key),
-- its channel and thread, and what makes a repeated callback the same reply.
CREATE TABLE dfo_replies (
    message_id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX dfo_replies_fingerprint ON dfo_replies (fingerprint, created_at);
CREATE INDEX dfo_replies_created ON dfo_replies (created_at);

-- The Add action between its page and its form: the one-time token's access token
-- stays here (never in the page), under a random nonce the form carries.
CREATE TABLE byoc_pending_adds (
    nonce TEXT PRIMARY KEY,
    access_token TEXT NOT NULL,
    brand_id TEXT,
    user_id TEXT,
    back_url TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
