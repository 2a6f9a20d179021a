-- Per-sender pacing across every worker process, in two steps:
-- 1. reserve: take the next free slot (GCRA: tat moves on by one spacing). When
--    the slot is due now and the last send is one spacing back, also start now.
-- 2. take: at a reserved slot, start only if the last actual send is one spacing
--    back (it may have started late); otherwise say how long to wait.
-- So no two sends of one key ever start closer than `spacing_s`, and a backlog
-- waits in the queue (run_at = its slot), never spinning.

-- name: reserve
INSERT INTO throttle_state AS t (key, tat, last_sent_at, updated_at)
VALUES (%(key)s, now() + %(spacing_s)s * interval '1 second', now(), now())
ON CONFLICT (key) DO UPDATE SET
    tat = GREATEST(t.tat, now()) + %(spacing_s)s * interval '1 second',
    last_sent_at = CASE
        WHEN t.tat <= now()
         AND (t.last_sent_at IS NULL
              OR t.last_sent_at <= now() - %(spacing_s)s * interval '1 second')
        THEN now() ELSE t.last_sent_at END,
    updated_at = now()
RETURNING tat - %(spacing_s)s * interval '1 second' AS slot,
          last_sent_at = now() AS started, now() AS db_now;

-- name: take
WITH taken AS (
    UPDATE throttle_state SET last_sent_at = now(), updated_at = now()
    WHERE key = %(key)s
      AND (last_sent_at IS NULL OR last_sent_at <= now() - %(spacing_s)s * interval '1 second')
    RETURNING key
)
SELECT EXISTS (SELECT 1 FROM taken) AS started,
       (SELECT last_sent_at + %(spacing_s)s * interval '1 second'
        FROM throttle_state WHERE key = %(key)s) AS free_at,
       now() AS db_now;

-- name: next_slots
SELECT key, tat AS next_slot, last_sent_at,
       GREATEST(EXTRACT(EPOCH FROM tat - now()), 0) AS backlog_s
FROM throttle_state ORDER BY key;
