-- Wake sleeping dispatchers only: NOTIFY is not free.
--
-- A transaction that NOTIFYs takes, at commit, a lock every other notifying
-- transaction in the cluster waits for, and holds it through its WAL flush: such
-- commits go one at a time (8 writers on this machine: 4,370 inserts/s without,
-- 1,950/s with a NOTIFY each). Every receipt that queues a CXone report and every
-- enqueue used to NOTIFY. A dispatcher about to sleep now writes until when it
-- naps, in the statement that reads when the next job is due; writers NOTIFY only
-- when one naps beyond the next 50 ms (a busy dispatcher claims again sooner by
-- itself). Unlogged: naps mean nothing after a crash.

CREATE UNLOGGED TABLE dispatcher_naps (
    worker_id TEXT PRIMARY KEY,
    until TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION smsgw_wake_dispatchers() RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dispatcher_naps
               WHERE until > clock_timestamp() + interval '50 milliseconds') THEN
        PERFORM pg_notify('outbox', '');
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION smsgw_queue_status_report(p_kind TEXT, p_message_id TEXT,
                                                     p_status TEXT, p_reason_code TEXT,
                                                     p_reason_message TEXT,
                                                     p_external_id TEXT, p_at TIMESTAMPTZ)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cxone_status_updates (cxone_message_id, status, reason_code, reason_message,
                                      external_id, receipt_at)
    VALUES (p_message_id, p_status, p_reason_code, p_reason_message, p_external_id,
            COALESCE(p_at, now()));
    PERFORM smsgw_enqueue_or_rerun(p_kind, p_kind || ':' || p_message_id,
                                   jsonb_build_object('message_id', p_message_id), NULL, NULL);
    PERFORM smsgw_wake_dispatchers();
END;
$$;
