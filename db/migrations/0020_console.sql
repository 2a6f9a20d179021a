-- The operations console (/console/): consent changes it records, the indexes its
-- overview reads at 1M messages of history, and the sessions an operator ended.

-- An operator's change made in the console is recorded with source 'console'.
ALTER TABLE consent_history DROP CONSTRAINT consent_history_source_check;
ALTER TABLE consent_history ADD CONSTRAINT consent_history_source_check
    CHECK (source IN ('keyword', 'opt_out_type', 'twilio_21610', 'api', 'cli', 'import',
                      'console'));

-- The overview's last hour (sends by outcome, per minute, per sender) reads these
-- audit events by time. Partial: the audit trail is the largest table and the
-- other events never need a time index, so their inserts pay nothing.
CREATE INDEX audit_log_sends_at ON audit_log (at)
    WHERE event IN ('send.created', 'send.adopted', 'send.failed', 'send.refused',
                    'message.no_receipt', 'job.retry');

-- Sessions are signed cookies; "Sign out" lists the session here until it would
-- have expired anyway, so a copy of the cookie is refused on every web process.
CREATE TABLE console_ended_sessions (
    session_id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
