-- Pacing: the slot reservation as one function, shared by the named queries
-- `throttle.reserve` and `throttle.reserve_or_queue` (db/queries/throttle.sql).

CREATE FUNCTION smsgw_reserve_slot(p_key TEXT, p_spacing_s DOUBLE PRECISION,
                                   p_hold_s DOUBLE PRECISION)
RETURNS TABLE (slot TIMESTAMPTZ, started BOOLEAN) LANGUAGE sql AS $$
    INSERT INTO throttle_state AS t (key, tat, in_flight_until, updated_at)
    VALUES (p_key, now() + p_spacing_s * interval '1 second',
            now() + p_hold_s * interval '1 second', now())
    ON CONFLICT (key) DO UPDATE SET
        tat = GREATEST(t.tat, now()) + p_spacing_s * interval '1 second',
        in_flight_until = CASE
            WHEN t.tat <= now()
             AND (t.in_flight_until IS NULL OR t.in_flight_until < now())
             AND (t.last_answered_at IS NULL
                  OR t.last_answered_at <= now() - p_spacing_s * interval '1 second')
            THEN now() + p_hold_s * interval '1 second' ELSE t.in_flight_until END,
        updated_at = now()
    RETURNING t.tat - p_spacing_s * interval '1 second',
              t.in_flight_until = now() + p_hold_s * interval '1 second';
$$;
