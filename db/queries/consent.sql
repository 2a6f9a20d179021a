-- The consent ledger: current state per (number, scope) and its append-only history.

-- name: get
SELECT status, source, updated_at FROM consent
WHERE phone_number = %(number)s AND scope = %(scope)s;

-- name: set
-- Change the current state and append to the history in one statement;
-- returns the previous status (NULL when there was none) only when it changed.
WITH previous AS (
    SELECT status FROM consent WHERE phone_number = %(number)s AND scope = %(scope)s
), upserted AS (
    INSERT INTO consent AS c (phone_number, scope, status, source, updated_at)
    VALUES (%(number)s, %(scope)s, %(status)s, %(source)s, now())
    ON CONFLICT (phone_number, scope) DO UPDATE SET
        status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()
    RETURNING status
), history AS (
    INSERT INTO consent_history (phone_number, scope, status, source, evidence)
    VALUES (%(number)s, %(scope)s, %(status)s, %(source)s, %(evidence)s)
)
SELECT (SELECT status FROM previous) AS previous_status;

-- name: history
SELECT id, scope, status, source, evidence, created_at FROM consent_history
WHERE phone_number = %(number)s ORDER BY id;

-- name: export
SELECT phone_number, scope, status, source, updated_at FROM consent ORDER BY phone_number, scope;
