-- The operations console's own reads: the overview's figures (its last hour by
-- minute), a number's messages, the dead letters' kinds, and ended sessions.
-- Event names are the audit trail's (see the workers); which event is which
-- outcome is decided in app/console/overview.py, not here.
-- Every time-bounded read of audit_log names only events of the partial index
-- audit_log_sends_at (migration 0020), so it reads the last hour, not the history.

-- name: overview_status
-- Lag, dead letters, live workers and the last webhook's age, in one round trip.
-- A worker is live when it beat within %(fresh_s)s seconds and did not say it stopped.
SELECT now() AS now, date_trunc('minute', now()) AS this_minute,
       (SELECT EXTRACT(EPOCH FROM now() - min(run_at))
        FROM outbox WHERE state = 'queued' AND run_at <= now()) AS lag_s,
       (SELECT count(*) FROM outbox WHERE state = 'dead') AS dead_letters,
       (SELECT count(*) FROM worker_heartbeats
        WHERE stopped_at IS NULL
          AND beat_at > now() - %(fresh_s)s * interval '1 second') AS workers,
       EXTRACT(EPOCH FROM now() - GREATEST(
           (SELECT max(received_at) FROM twilio_receipts WHERE source = 'callback'),
           (SELECT max(received_at) FROM inbound_messages))) AS last_webhook_s;

-- name: queued_up_to
-- How many jobs are queued, counting no further than %(cap)s (the runnable index only).
SELECT count(*) AS n FROM (SELECT 1 FROM outbox WHERE state = 'queued' LIMIT %(cap)s) AS q;

-- name: queue_estimate
-- A long queue, estimated from a sample of the table's pages (an exact count of a
-- 100,000-job backlog costs more than the whole overview may take); dead jobs are
-- counted. The states are those of admin.queue_depth.
SELECT kind,
       CASE WHEN locked_by IS NOT NULL AND run_at > now() THEN 'running'
            WHEN run_at <= now() THEN 'runnable'
            ELSE 'scheduled' END AS state,
       round(count(*) * 100.0 / %(percent)s) AS jobs
FROM outbox TABLESAMPLE SYSTEM (%(percent)s)
WHERE state = 'queued'
GROUP BY 1, 2
UNION ALL
SELECT kind, 'dead', count(*) FROM outbox WHERE state = 'dead' GROUP BY 1;

-- name: outbox_rows
-- The planner's estimate of the outbox's rows (done ones included): sets the sample.
SELECT GREATEST(reltuples, 0) AS n FROM pg_class WHERE oid = 'outbox'::regclass;

-- name: sender_slots
-- Each pacing key's next free slot and how far ahead it is booked.
SELECT key, tat AS next_slot, GREATEST(EXTRACT(EPOCH FROM tat - now()), 0) AS backlog_s
FROM throttle_state ORDER BY key;

-- name: send_events_by_minute
-- The last 60 minutes (the current one included) of send-related audit events, by
-- minute, event and sender (the sender of a created or adopted send).
SELECT date_trunc('minute', at) AS minute, event,
       CASE WHEN event IN ('send.created', 'send.adopted') THEN details->>'sender' END AS sender,
       count(*) AS n
FROM audit_log
WHERE event IN ('send.created', 'send.adopted', 'send.failed', 'send.refused',
                'message.no_receipt', 'job.retry')
  AND at >= date_trunc('minute', now()) - interval '59 minutes'
  AND (event <> 'job.retry' OR details->>'kind' = 'send_sms')
GROUP BY 1, 2, 3;

-- name: receipts_by_minute
-- The last 60 minutes of Twilio receipts, by minute and status.
SELECT date_trunc('minute', received_at) AS minute, message_status AS status, count(*) AS n
FROM twilio_receipts
WHERE received_at >= date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 1, 2;

-- name: messages_of_number
-- The latest messages sent to or received from one number, newest first (by the
-- audit trail's phone index): one row per message (CXone id, or the SID of an
-- inbound text).
WITH recent AS (
    SELECT id, at, event, source, cxone_message_id, twilio_message_sid
    FROM audit_log
    WHERE phone_number = %(number)s
      AND event IN ('message.enqueued', 'send.claimed', 'send.created', 'send.adopted',
                    'send.failed', 'send.refused', 'inbound.received')
    ORDER BY id DESC
    LIMIT 2000
)
SELECT COALESCE(cxone_message_id, twilio_message_sid) AS ref,
       bool_or(event = 'inbound.received') AS inbound,
       min(at) AS first_at,
       max(at) AS last_at,
       max(twilio_message_sid) AS sid,
       (array_agg(event ORDER BY id DESC))[1] AS last_event
FROM recent
WHERE COALESCE(cxone_message_id, twilio_message_sid) IS NOT NULL
GROUP BY 1
ORDER BY max(id) DESC
LIMIT %(limit)s;

-- name: session_ended
SELECT EXISTS (SELECT 1 FROM console_ended_sessions WHERE session_id = %(session_id)s) AS ended;

-- name: end_session
-- Also forgets sessions that would have expired by now: the table stays small.
WITH forgotten AS (
    DELETE FROM console_ended_sessions WHERE expires_at < now()
)
INSERT INTO console_ended_sessions (session_id, expires_at)
VALUES (%(session_id)s, to_timestamp(%(expires_at)s))
ON CONFLICT (session_id) DO NOTHING;

-- name: dead_kinds
-- The kinds that have dead letters (for the filter), by the partial index on dead jobs.
SELECT DISTINCT kind FROM outbox WHERE state = 'dead' ORDER BY kind;
