-- Pacing for a whole claim batch at once.
--
-- smsgw_place_sends reserves consecutive slots for many send jobs in one call
-- (jobs of one sender get consecutive slots, in the given order), takes the
-- sender at once for the first job of an idle sender, and puts every job whose
-- slot is further than p_lookahead_s away back in the queue at that slot
-- (fenced by its claim count). A backlog of thousands is placed in a few dozen
-- statements instead of one per job, so due sends are not starved behind it.

CREATE FUNCTION smsgw_place_sends(p_jobs JSONB, p_hold_s DOUBLE PRECISION,
                                  p_lookahead_s DOUBLE PRECISION)
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
        INSERT INTO throttle_state AS t (key, tat, in_flight_until, updated_at)
        SELECT k.key, now() + k.n * k.spacing * interval '1 second',
               now() + p_hold_s * interval '1 second', now()
        FROM keyed k
        ON CONFLICT (key) DO UPDATE SET
            tat = GREATEST(t.tat, now()) + (EXCLUDED.tat - now()),
            in_flight_until = CASE
                WHEN t.tat <= now()
                 AND (t.in_flight_until IS NULL OR t.in_flight_until < now())
                 AND (t.last_answered_at IS NULL OR t.last_answered_at
                      <= now() - (SELECT k2.spacing FROM keyed k2 WHERE k2.key = t.key)
                                 * interval '1 second')
                THEN now() + p_hold_s * interval '1 second' ELSE t.in_flight_until END,
            updated_at = now()
        RETURNING t.key, t.tat, t.in_flight_until = now() + p_hold_s * interval '1 second'
                  AS taken
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
            locked_by = NULL,
            updated_at = now()
        FROM slotted s
        WHERE o.id = s.id AND o.claims = s.claims AND o.state = 'queued'
          AND NOT s.started AND s.slot > now() + p_lookahead_s * interval '1 second'
        RETURNING o.id
    )
    SELECT s.id, s.slot, s.started, EXISTS (SELECT 1 FROM requeued r WHERE r.id = s.id), now()
    FROM slotted s;
END;
$$;
