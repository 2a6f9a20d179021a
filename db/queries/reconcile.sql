-- The reconciler's work lists.

-- name: stale_sent
-- Outbound messages still waiting for a final receipt, older than `after_s`, not
-- asked about at Twilio within the last `after_s`.
-- Every SID of the current dispatch that is not final yet (a long reply has one per part).
SELECT s.cxone_message_id, t.sid AS twilio_message_sid, t.status AS twilio_status,
       s.created_at
FROM sms_gateway_state s
JOIN twilio_messages t ON t.cxone_message_id = s.cxone_message_id AND t.dispatch = s.attempts
WHERE s.direction = 'OUTBOUND' AND s.outcome IS NULL AND NOT t.final
  AND s.created_at < now() - %(after_s)s * interval '1 second'
  AND (s.reconciled_at IS NULL OR s.reconciled_at < now() - %(after_s)s * interval '1 second')
ORDER BY s.reconciled_at NULLS FIRST, s.created_at
LIMIT %(limit)s;

-- name: mark_reconciled
UPDATE sms_gateway_state SET reconciled_at = now()
WHERE cxone_message_id = %(message_id)s AND direction = 'OUTBOUND';

-- name: expire_no_receipt
-- Past the maximum age with no final receipt: end in an explicit "no receipt".
UPDATE sms_gateway_state SET outcome = 'no_receipt', final_at = now(), updated_at = now()
WHERE direction = 'OUTBOUND' AND outcome IS NULL
  AND created_at < now() - %(max_age_s)s * interval '1 second'
RETURNING cxone_message_id, twilio_message_sid, twilio_status, to_number;

-- name: stranded_receipts
-- Receipts kept while their SID was unknown whose SID is known now.
SELECT DISTINCT r.message_sid FROM twilio_receipts r
JOIN twilio_messages m ON m.sid = r.message_sid
WHERE r.applied_at IS NULL
LIMIT %(limit)s;

-- name: status_updates_of
SELECT * FROM cxone_status_updates WHERE cxone_message_id = %(message_id)s ORDER BY id;

-- name: record_run
INSERT INTO reconciler_runs (name, last_started_at, last_finished_at, last_result)
VALUES (%(name)s, %(started_at)s, now(), %(result)s)
ON CONFLICT (name) DO UPDATE SET last_started_at = EXCLUDED.last_started_at,
    last_finished_at = now(), last_result = EXCLUDED.last_result;

-- name: runs
SELECT * FROM reconciler_runs ORDER BY name;
