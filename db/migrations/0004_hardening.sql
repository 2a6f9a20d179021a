-- Hardening: keywords applied once ever, one canonical form per number, role health.

-- Every inbound keyword (STOP/START/HELP) ever applied, by MessageSid. Unlike the
-- inbound dedupe rows (trimmed after DEDUPE_RETENTION_S) these are kept for good,
-- so a signed keyword replayed months later never changes consent again. Small:
-- one row per keyword message.
CREATE TABLE keyword_messages (
    message_sid TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL,
    keyword TEXT NOT NULL CHECK (keyword IN ('opt_out', 'opt_in', 'help')),
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Numbers recorded before there was one canonical form (a trailing newline or
-- spaces through the admin API or an import) join their canonical entry. An
-- opt-out wins: refusing a send is the safe side of a doubt.
WITH odd AS (
    DELETE FROM consent
    WHERE phone_number <> regexp_replace(phone_number, '[[:space:]().-]', '', 'g')
    RETURNING regexp_replace(phone_number, '[[:space:]().-]', '', 'g') AS number,
              phone_number AS original, scope, status, updated_at
), merged AS (
    SELECT number, scope,
           CASE WHEN bool_or(status = 'opted_out') THEN 'opted_out' ELSE 'opted_in' END
               AS status,
           max(updated_at) AS updated_at
    FROM odd GROUP BY number, scope
), upserted AS (
    INSERT INTO consent AS c (phone_number, scope, status, source, updated_at)
    SELECT number, scope, status, 'api', updated_at FROM merged
    ON CONFLICT (phone_number, scope) DO UPDATE SET
        status = CASE WHEN c.status = 'opted_out' OR EXCLUDED.status = 'opted_out'
                      THEN 'opted_out' ELSE EXCLUDED.status END,
        updated_at = now()
    RETURNING phone_number, status
)
INSERT INTO audit_log (event, phone_number, to_state, reason, source, details)
SELECT 'consent.merged', u.phone_number, u.status, 'canonical phone number', 'migration',
       jsonb_build_object('merged_from', (SELECT jsonb_agg(o.original) FROM odd o
                                           WHERE o.number = u.phone_number))
FROM upserted u;

-- What each worker's roles (poller, dispatcher, status sync, …) last reported,
-- written with the heartbeat: readiness and metrics read a stuck or crash-looping
-- role from here.
ALTER TABLE worker_heartbeats ADD COLUMN roles JSONB NOT NULL DEFAULT '{}'::jsonb;
