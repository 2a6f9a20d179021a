-- Per-sender pacing across every worker process (the functions are in migration 0003).
-- place_sends: book the next free slots of a batch of sends (GCRA: a sender's next
--   slot moves on by one spacing per send); run_at becomes the slot.
-- take: at its slot, a send starts if its sender is free; otherwise say when.
-- answered: Twilio answered (or the attempt ended): a slow sender is free again
--   one spacing later.
-- A backlog waits in the queue (run_at = its slot), never spinning.

-- name: take
-- Start now if the sender is free (smsgw_sender_free_at); otherwise
-- say when it will be (free_at), or that a create of it is still in flight (busy).
WITH taken AS (
    UPDATE throttle_state SET in_flight_until = now() + %(hold_s)s * interval '1 second',
                              last_started_at = now(), updated_at = now()
    WHERE key = %(key)s
      AND smsgw_sender_free_at(in_flight_until, last_answered_at, last_started_at,
                               %(spacing_s)s) <= now()
    RETURNING key
), sender_row AS (
    SELECT smsgw_sender_free_at(in_flight_until, last_answered_at, last_started_at,
                                %(spacing_s)s) AS free_at
    FROM throttle_state WHERE key = %(key)s
)
SELECT EXISTS (SELECT 1 FROM taken) AS started,
       (SELECT GREATEST(free_at, now()) FROM sender_row WHERE free_at IS NOT NULL) AS free_at,
       EXISTS (SELECT 1 FROM sender_row WHERE free_at IS NULL) AS busy,
       now() AS db_now;

-- name: answered
UPDATE throttle_state SET last_answered_at = now(), in_flight_until = NULL, updated_at = now()
WHERE key = %(key)s;

-- name: next_slots
SELECT key, tat AS next_slot, last_answered_at, in_flight_until,
       GREATEST(EXTRACT(EPOCH FROM tat - now()), 0) AS backlog_s
FROM throttle_state ORDER BY key;

-- name: place_sends
-- Slots for a whole batch of send jobs (see smsgw_place_sends).
SELECT * FROM smsgw_place_sends(%(jobs)s, %(hold_s)s, %(lookahead_s)s, %(take)s);
