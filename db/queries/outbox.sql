-- The job queue. A claimed job's run_at is its lease expiry; `claims` is the
-- fencing token: every write after a claim checks it, so a worker whose lease
-- ran out cannot complete a job someone else now holds.

-- name: enqueue
-- Insert a job unless its dedupe key exists; wake napping dispatchers on commit.
WITH inserted AS (
    INSERT INTO outbox (kind, dedupe_key, payload, run_at, ordering_key)
    VALUES (%(kind)s, %(dedupe_key)s, %(payload)s, COALESCE(%(run_at)s, now()), %(ordering_key)s)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
)
SELECT id, smsgw_wake_dispatchers() FROM inserted;

-- name: enqueue_many
-- Insert a batch of jobs (those whose dedupe key is new) in order, with an audit entry
-- for each new one; wake sleeping dispatchers on commit. One statement for a poll page.
WITH wanted AS (
    SELECT j.* FROM jsonb_to_recordset(%(jobs)s)
        AS j(ord INTEGER, kind TEXT, dedupe_key TEXT, payload JSONB, ordering_key TEXT,
             message_id TEXT, phone TEXT, details JSONB, audit BOOLEAN)
), inserted AS (
    INSERT INTO outbox (kind, dedupe_key, payload, ordering_key)
    SELECT w.kind, w.dedupe_key, w.payload, w.ordering_key FROM wanted w ORDER BY w.ord
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, dedupe_key
), audited AS (
    INSERT INTO audit_log (event, cxone_message_id, phone_number, to_state, source, details)
    SELECT %(audit_event)s, w.message_id, w.phone, 'queued', %(source)s,
           w.details || jsonb_build_object('job_id', i.id)
    FROM inserted i JOIN wanted w ON w.dedupe_key = i.dedupe_key
    WHERE w.audit
)
SELECT i.id, i.dedupe_key, smsgw_wake_dispatchers() FROM inserted i;

-- name: record_done
-- A finished marker under a dedupe key: this key was handled, never run it.
INSERT INTO outbox (kind, dedupe_key, payload, state, finished_at)
VALUES (%(kind)s, %(dedupe_key)s, %(payload)s, 'done', now())
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id;

-- name: reopen
-- Queue a finished job again after delay_s with its new payload (30008 re-dispatch).
-- Counts as one more attempt; it is booked afresh. Does nothing to a job that is
-- queued or running.
UPDATE outbox SET
    state = 'queued',
    payload = %(payload)s,
    slot = NULL,
    run_at = now() + %(delay_s)s * interval '1 second',
    attempts = attempts + 1,
    locked_by = NULL,
    finished_at = NULL,
    updated_at = now()
WHERE dedupe_key = %(dedupe_key)s AND state <> 'queued'
RETURNING id, attempts;

-- name: claim
-- Claim up to `limit` runnable jobs in one statement, taking a lease on each.
-- Jobs sharing an ordering key run one at a time, oldest first.
WITH picked AS (
    SELECT id, run_at AS due_at
    FROM outbox o
    WHERE state = 'queued'
      AND run_at <= now() + %(lookahead_s)s * interval '1 second'
      AND (ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM outbox e
            WHERE e.state = 'queued' AND e.ordering_key = o.ordering_key AND e.id < o.id))
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET
    run_at = now() + %(lease_s)s * interval '1 second',
    claims = o.claims + 1,
    locked_by = %(worker)s,
    locked_at = now(),
    updated_at = now()
FROM picked
WHERE o.id = picked.id
RETURNING o.id, o.kind, o.dedupe_key, o.ordering_key, o.payload, o.attempts, o.claims,
          o.created_at, o.last_error, picked.due_at, now() AS db_now, o.slot;

-- name: complete
-- Done, or queued again if new work arrived meanwhile (see smsgw_complete_job).
SELECT smsgw_complete_job(%(id)s, %(claims)s) AS completed;

-- name: retry
-- A failed try: count it and run again after `delay_s`.
UPDATE outbox SET
    attempts = attempts + 1,
    run_at = now() + %(delay_s)s * interval '1 second',
    last_error = %(error)s,
    locked_by = NULL,
    rerun = FALSE,
    updated_at = now()
WHERE id = %(id)s AND claims = %(claims)s AND state = 'queued'
RETURNING id;

-- name: reschedule
-- Not a failure (throttled, waiting out an ambiguous send): run again at `run_at`.
UPDATE outbox SET
    run_at = GREATEST(%(run_at)s, now()),
    locked_by = NULL,
    updated_at = now()
WHERE id = %(id)s AND claims = %(claims)s AND state = 'queued'
RETURNING id;

-- name: bury
-- Give up: the job goes to the dead-letter state with its last error.
UPDATE outbox SET
    state = 'dead',
    attempts = attempts + 1,
    last_error = %(error)s,
    locked_by = NULL,
    rerun = FALSE,
    finished_at = now(),
    updated_at = now()
WHERE id = %(id)s AND claims = %(claims)s AND state = 'queued'
RETURNING id;

-- name: next_due
-- When the next job becomes runnable (NULL when nothing is queued); jobs waiting
-- behind an earlier one of their ordering key do not count (they are not runnable).
SELECT (SELECT run_at FROM outbox o
        WHERE state = 'queued'
          AND (ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox e
                WHERE e.state = 'queued' AND e.ordering_key = o.ordering_key AND e.id < o.id))
        ORDER BY run_at, id LIMIT 1) AS next_run_at,
       now() AS db_now;

-- name: nap
-- A dispatcher about to sleep: when the next job is due and, in the same statement (an
-- enqueue that commits after it sees the nap and wakes it), until when it sleeps:
-- that job's time less the lookahead, within [min_s, max_s] from now. Naps of
-- workers gone for ten minutes are dropped on the way.
WITH next AS (
    SELECT (SELECT run_at FROM outbox o
            WHERE state = 'queued'
              AND (ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM outbox e
                    WHERE e.state = 'queued' AND e.ordering_key = o.ordering_key
                      AND e.id < o.id))
            ORDER BY run_at, id LIMIT 1) AS next_run_at
), napping AS (
    INSERT INTO dispatcher_naps AS d (worker_id, until)
    SELECT %(worker_id)s,
           LEAST(now() + %(max_s)s * interval '1 second',
                 GREATEST(now() + %(min_s)s * interval '1 second',
                          COALESCE(n.next_run_at, 'infinity'::timestamptz)
                          - %(lookahead_s)s * interval '1 second'))
    FROM next n
    ON CONFLICT (worker_id) DO UPDATE SET until = EXCLUDED.until
), gone AS (
    DELETE FROM dispatcher_naps
    WHERE until < now() - interval '10 minutes' AND worker_id <> %(worker_id)s
)
SELECT n.next_run_at, now() AS db_now FROM next n;

-- name: get
SELECT * FROM outbox WHERE id = %(id)s;

-- name: get_by_dedupe_key
SELECT * FROM outbox WHERE dedupe_key = %(dedupe_key)s;

-- name: complete_many
-- Complete a batch of finished jobs in one statement (each fenced by its claims);
-- returns the ids that were still ours.
SELECT j.id FROM unnest(%(ids)s::bigint[], %(claims)s::integer[]) AS j(id, claims)
WHERE smsgw_complete_job(j.id, j.claims);
