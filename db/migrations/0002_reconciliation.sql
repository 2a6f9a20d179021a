-- Reconciliation and operations (issue "Recovery and operations").

-- When the reconciler last asked Twilio about a message still waiting for its receipt.
ALTER TABLE sms_gateway_state ADD COLUMN reconciled_at TIMESTAMPTZ;

-- Where the reconciler's own scans stand (it never touches the poller's cursor).
CREATE TABLE reconciler_runs (
    name TEXT PRIMARY KEY,
    last_started_at TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_result JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- Hot tables of a queue: vacuum early (the outbox got its settings in 0001).
ALTER TABLE cxone_status_updates SET (autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE idempotency_keys SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE twilio_receipts SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE worker_heartbeats SET (fillfactor = 50);
