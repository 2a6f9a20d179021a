-- Operations: worker heartbeats and the figures health checks and metrics read.

-- name: heartbeat
INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, beat_at, roles)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, now(), now(), %(roles)s)
ON CONFLICT (worker_id) DO UPDATE SET beat_at = now(), stopped_at = NULL,
    roles = EXCLUDED.roles;

-- name: worker_stopped
UPDATE worker_heartbeats SET stopped_at = now(), beat_at = now() WHERE worker_id = %(worker_id)s;

-- name: live_workers
-- Workers that beat within `fresh_s` seconds and did not say they stopped.
SELECT worker_id, hostname, pid, started_at, beat_at,
       EXTRACT(EPOCH FROM now() - beat_at)::float AS age_s, roles
FROM worker_heartbeats
WHERE stopped_at IS NULL AND beat_at > now() - %(fresh_s)s * interval '1 second'
ORDER BY worker_id;

-- name: now
SELECT now() AS now;
