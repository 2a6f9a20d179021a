-- Pacing (the rules are in app/pacing.py; these statements do the bookkeeping).
--
-- Each sender key (a number of the pool, or the Messaging Service) has a rate in
-- segments per second; a send of w segments "weighs" w spacings (weight_s). Two
-- clocks per key, both GCRA theoretical arrival times:
--   tat        the next free slot to book. New sends are booked when they are
--              enqueued (run_at := slot), so a backlog waits in the queue and
--              never spins.
--   start_tat  when the next send may start, counted from actual starts. A send
--              may start once start_tat less the tolerance has come, so a late
--              start is absorbed instead of carried forward; the tolerance
--              (app/pacing.py) keeps every window of 1, 10 and 60 s within its
--              limit. Nothing waits for Twilio's answer: latency never delays
--              the next send.
-- Every writer locks sender rows in key order (no deadlocks).

-- name: book
-- Book slots for a batch of new sends: jobs of one key get consecutive slots in the
-- given order, weighted; run_at becomes the slot. One statement for a poll page.
WITH jobs AS (
    SELECT j.id, j.key, j.weight_s, j.ord
    FROM jsonb_to_recordset(%(jobs)s)
        AS j(id BIGINT, key TEXT, weight_s DOUBLE PRECISION, ord INTEGER)
), keyed AS (
    SELECT jobs.key, sum(jobs.weight_s) AS total FROM jobs GROUP BY jobs.key
), advanced AS (
    INSERT INTO throttle_state AS t (key, tat, start_tat, updated_at)
    SELECT k.key, now() + k.total * interval '1 second', now(), now()
    FROM keyed k ORDER BY k.key
    ON CONFLICT (key) DO UPDATE SET
        tat = GREATEST(t.tat, now()) + (EXCLUDED.tat - now()),
        updated_at = now()
    RETURNING t.key, t.tat
), slotted AS (
    SELECT jobs.id,
           a.tat - sum(jobs.weight_s) OVER (PARTITION BY jobs.key ORDER BY jobs.ord DESC)
                   * interval '1 second' AS slot
    FROM jobs JOIN advanced a ON a.key = jobs.key
)
UPDATE outbox o SET run_at = s.slot, slot = s.slot, updated_at = now()
FROM slotted s WHERE o.id = s.id
RETURNING o.id, o.slot;

-- name: take
-- A send at (or after) its slot: start now when the key's start clock allows, else
-- come back later. A send that was never booked (a re-dispatch, a replay) is booked
-- on the way: starting or not, it takes its share of the key's slots. When the turn
-- is taken, the send's idempotency key is marked in flight in the same statement
-- (db/queries/send.sql has the key's other statements): nothing stands between the
-- turn and the create, so the create arrives at Twilio when the clock said it may.
WITH turn AS (
    INSERT INTO throttle_state AS t (key, tat, start_tat, last_start_at, updated_at)
    VALUES (%(key)s, now() + %(weight_s)s * interval '1 second',
            now() + %(weight_s)s * interval '1 second', now(), now())
    ON CONFLICT (key) DO UPDATE SET
        start_tat = CASE
            WHEN t.start_tat - %(tolerance_s)s * interval '1 second' <= now()
            THEN GREATEST(t.start_tat, now()) + %(weight_s)s * interval '1 second'
            ELSE t.start_tat END,
        last_start_at = CASE
            WHEN t.start_tat - %(tolerance_s)s * interval '1 second' <= now()
            THEN now() ELSE t.last_start_at END,
        tat = CASE WHEN %(booked)s THEN t.tat
                   ELSE GREATEST(t.tat, now()) + %(weight_s)s * interval '1 second' END,
        updated_at = now()
    RETURNING t.last_start_at = now() AS started, t.tat, t.start_tat
), booked AS (
    UPDATE outbox SET slot = (SELECT tat FROM turn) - %(weight_s)s * interval '1 second'
    WHERE id = %(job_id)s AND claims = %(claims)s AND state = 'queued'
      AND NOT %(booked)s AND NOT (SELECT started FROM turn)
    RETURNING slot
), in_flight AS (
    INSERT INTO idempotency_keys AS k (key, cxone_message_id, state, to_number, from_number,
                                       started_at, expires_at)
    SELECT %(idem_key)s, %(message_id)s, 'in_flight', %(to)s, %(from)s, now(),
           now() + %(ttl_s)s * interval '1 second'
    WHERE (SELECT started FROM turn) AND %(idem_key)s::text IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET
        state = 'in_flight', started_at = now(), from_number = EXCLUDED.from_number,
        expires_at = EXCLUDED.expires_at
    WHERE k.state = 'in_flight' OR k.expires_at <= now()
    RETURNING started_at
)
SELECT turn.started, (SELECT started_at FROM in_flight) AS key_started_at,
       (SELECT slot FROM booked) AS booked_slot,
       GREATEST(COALESCE((SELECT slot FROM booked), %(slot)s::timestamptz, now()),
                turn.start_tat - %(tolerance_s)s * interval '1 second') AS come_back_at,
       now() AS db_now
FROM turn;

-- name: next_slots
-- Every key's next free slot and how far ahead it is booked (operators, metrics).
SELECT key, tat AS next_slot, start_tat AS next_start,
       GREATEST(EXTRACT(EPOCH FROM tat - now()), 0)::float AS backlog_s
FROM throttle_state ORDER BY key;
