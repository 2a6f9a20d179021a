-- Operator views: queue figures, dead letters, message timelines.

-- name: queue_depth
SELECT kind,
       CASE WHEN state = 'dead' THEN 'dead'
            WHEN locked_by IS NOT NULL AND run_at > now() THEN 'running'
            WHEN run_at <= now() THEN 'runnable'
            ELSE 'scheduled' END AS state,
       count(*) AS jobs
FROM outbox WHERE state IN ('queued', 'dead')
GROUP BY 1, 2 ORDER BY 1, 2;

-- name: oldest_runnable
SELECT EXTRACT(EPOCH FROM now() - min(run_at)) AS age_s
FROM outbox WHERE state = 'queued' AND run_at <= now();

-- name: dead_count
SELECT count(*) AS dead FROM outbox WHERE state = 'dead';

-- name: last_webhook
SELECT EXTRACT(EPOCH FROM now() - GREATEST(
           (SELECT max(received_at) FROM twilio_receipts WHERE source = 'callback'),
           (SELECT max(received_at) FROM inbound_messages))) AS age_s;

-- name: dead_letters
SELECT id, kind, dedupe_key, attempts, last_error, created_at, updated_at,
       payload->>'message_id' AS message_id, payload->>'to' AS to_number
FROM outbox
WHERE state = 'dead'
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(error)s::text IS NULL OR last_error ILIKE '%%' || %(error)s || '%%')
ORDER BY updated_at
LIMIT %(limit)s;

-- name: replay
-- Back to the queue, now, with a fresh attempt budget; each kind's payload gets the
-- patch given for it (sends look Twilio up first: app/jobs.py REPLAY_PATCH).
UPDATE outbox SET
    state = 'queued', run_at = now(), attempts = 0, locked_by = NULL, finished_at = NULL,
    payload = payload || COALESCE(%(patches)s::jsonb -> kind, '{}'::jsonb),
    slot = NULL,
    updated_at = now()
WHERE id = ANY(%(ids)s) AND state = 'dead'
RETURNING id, kind, dedupe_key, payload->>'message_id' AS message_id;

-- name: discard
UPDATE outbox SET state = 'done', finished_at = now(), updated_at = now(),
    last_error = 'discarded by operator: ' || COALESCE(last_error, '')
WHERE id = ANY(%(ids)s) AND state = 'dead'
RETURNING id, kind, dedupe_key, payload->>'message_id' AS message_id;

-- name: jobs_for_message
SELECT id, kind, dedupe_key, state, attempts, claims, last_error, created_at, updated_at,
       finished_at
FROM outbox
WHERE dedupe_key = ANY(%(dedupe_keys)s) ORDER BY id;

-- name: message_for_sid
SELECT cxone_message_id FROM twilio_messages WHERE sid = %(sid)s
UNION
SELECT cxone_message_id FROM sms_gateway_state WHERE twilio_message_sid = %(sid)s;
