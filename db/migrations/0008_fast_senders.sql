-- Pacing for fast senders.
--
-- A send waits until its sender is free. For a slow sender (spacing of 0.2 s or
-- more: long codes, toll-free) "free" means nothing in flight and Twilio's answer
-- to the previous create one spacing back, so the spacing holds at Twilio's end
-- whatever the jitter. A fast sender (a short code at 100/s: spacing 10 ms)
-- cannot wait for each answer (that would cap it at 1/latency), so it only
-- spaces the starts of its creates and may have several in flight.

ALTER TABLE throttle_state ADD COLUMN last_started_at TIMESTAMPTZ;

-- The earliest instant a new send of this sender may start (-infinity: now);
-- NULL when a slow sender has a create in flight (free one spacing after its answer).
CREATE FUNCTION smsgw_sender_free_at(p_in_flight_until TIMESTAMPTZ,
                                     p_last_answered_at TIMESTAMPTZ,
                                     p_last_started_at TIMESTAMPTZ,
                                     p_spacing_s DOUBLE PRECISION)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_spacing_s >= 0.2 AND p_in_flight_until > now() THEN NULL
        WHEN p_spacing_s >= 0.2 THEN GREATEST(
            COALESCE(p_last_answered_at, '-infinity') + p_spacing_s * interval '1 second',
            COALESCE(p_last_started_at, '-infinity') + p_spacing_s * interval '1 second')
        ELSE COALESCE(p_last_started_at, '-infinity') + p_spacing_s * interval '1 second'
    END;
$$;

CREATE OR REPLACE FUNCTION smsgw_reserve_slot(p_key TEXT, p_spacing_s DOUBLE PRECISION,
                                              p_hold_s DOUBLE PRECISION)
RETURNS TABLE (slot TIMESTAMPTZ, started BOOLEAN) LANGUAGE sql AS $$
    INSERT INTO throttle_state AS t (key, tat, in_flight_until, last_started_at, updated_at)
    VALUES (p_key, now() + p_spacing_s * interval '1 second',
            now() + p_hold_s * interval '1 second', now(), now())
    ON CONFLICT (key) DO UPDATE SET
        tat = GREATEST(t.tat, now()) + p_spacing_s * interval '1 second',
        in_flight_until = CASE
            WHEN t.tat <= now() AND smsgw_sender_free_at(t.in_flight_until, t.last_answered_at,
                                                         t.last_started_at, p_spacing_s) <= now()
            THEN now() + p_hold_s * interval '1 second' ELSE t.in_flight_until END,
        last_started_at = CASE
            WHEN t.tat <= now() AND smsgw_sender_free_at(t.in_flight_until, t.last_answered_at,
                                                         t.last_started_at, p_spacing_s) <= now()
            THEN now() ELSE t.last_started_at END,
        updated_at = now()
    RETURNING t.tat - p_spacing_s * interval '1 second', t.last_started_at = now();
$$;

CREATE OR REPLACE FUNCTION smsgw_place_sends(p_jobs JSONB, p_hold_s DOUBLE PRECISION,
                                             p_lookahead_s DOUBLE PRECISION, p_take BOOLEAN)
RETURNS TABLE (id BIGINT, slot TIMESTAMPTZ, started BOOLEAN, queued BOOLEAN,
               db_now TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH jobs AS (
        SELECT j.id, j.claims, j.key, j.spacing, j.ord
        FROM jsonb_to_recordset(p_jobs)
            AS j(id BIGINT, claims INTEGER, key TEXT, spacing DOUBLE PRECISION, ord INTEGER)
    ), keyed AS (
        SELECT jobs.key, max(jobs.spacing) AS spacing, count(*) AS n
        FROM jobs GROUP BY jobs.key
    ), advanced AS (
        INSERT INTO throttle_state AS t (key, tat, in_flight_until, last_started_at, updated_at)
        SELECT k.key, now() + k.n * k.spacing * interval '1 second',
               CASE WHEN p_take THEN now() + p_hold_s * interval '1 second' END,
               CASE WHEN p_take THEN now() END, now()
        FROM keyed k
        ORDER BY k.key  -- every writer locks sender rows in key order: no deadlocks
        ON CONFLICT (key) DO UPDATE SET
            tat = GREATEST(t.tat, now()) + (EXCLUDED.tat - now()),
            in_flight_until = CASE
                WHEN p_take AND t.tat <= now()
                 AND smsgw_sender_free_at(t.in_flight_until, t.last_answered_at,
                                          t.last_started_at,
                                          (SELECT k2.spacing FROM keyed k2 WHERE k2.key = t.key))
                     <= now()
                THEN now() + p_hold_s * interval '1 second' ELSE t.in_flight_until END,
            last_started_at = CASE
                WHEN p_take AND t.tat <= now()
                 AND smsgw_sender_free_at(t.in_flight_until, t.last_answered_at,
                                          t.last_started_at,
                                          (SELECT k2.spacing FROM keyed k2 WHERE k2.key = t.key))
                     <= now()
                THEN now() ELSE t.last_started_at END,
            updated_at = now()
        RETURNING t.key, t.tat, p_take AND t.last_started_at = now() AS taken
    ), slotted AS (
        SELECT jobs.id, jobs.claims, jobs.key,
               a.tat - (k.n - row_number() OVER (PARTITION BY jobs.key ORDER BY jobs.ord) + 1)
                       * jobs.spacing * interval '1 second' AS slot,
               a.taken AND row_number() OVER (PARTITION BY jobs.key ORDER BY jobs.ord) = 1
                   AS started
        FROM jobs JOIN keyed k ON k.key = jobs.key JOIN advanced a ON a.key = jobs.key
    ), requeued AS (
        UPDATE outbox o SET
            run_at = s.slot,
            payload = o.payload || jsonb_build_object('slot', s.slot, 'throttle_key', s.key),
            locked_by = CASE WHEN p_take THEN NULL ELSE o.locked_by END,
            updated_at = now()
        FROM slotted s
        WHERE o.id = s.id AND o.claims = s.claims AND o.state = 'queued'
          AND (NOT p_take
               OR (NOT s.started AND s.slot > now() + p_lookahead_s * interval '1 second'))
        RETURNING o.id
    )
    SELECT s.id, s.slot, s.started, EXISTS (SELECT 1 FROM requeued r WHERE r.id = s.id), now()
    FROM slotted s;
END;
$$;
