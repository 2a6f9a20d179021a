-- CXone-side state: the poll cursor, conversation threading, status sync.

-- name: get_cursor
SELECT cursor FROM poll_cursors WHERE name = %(name)s;

-- name: save_cursor
INSERT INTO poll_cursors (name, cursor, updated_at) VALUES (%(name)s, %(cursor)s, now())
ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now();

-- name: find_conversation
SELECT conversation_id, status FROM cxone_conversations
WHERE customer_number = %(customer)s AND business_number = %(business)s;

-- name: remember_conversation
-- The latest conversation seen for a (customer, business) pair wins.
INSERT INTO cxone_conversations (customer_number, business_number, conversation_id, status,
                                 updated_at)
VALUES (%(customer)s, %(business)s, %(conversation_id)s, %(status)s, now())
ON CONFLICT (customer_number, business_number) DO UPDATE SET
    conversation_id = EXCLUDED.conversation_id, status = EXCLUDED.status, updated_at = now();

-- name: remember_conversations
-- remember_conversation for a whole page in one statement; within the page, the
-- last reply of a pair wins (as it would one by one).
INSERT INTO cxone_conversations (customer_number, business_number, conversation_id, status,
                                 updated_at)
SELECT DISTINCT ON (c.customer, c.business) c.customer, c.business, c.conversation_id,
       'OPEN', now()
FROM jsonb_to_recordset(%(pairs)s)
    AS c(ord INTEGER, customer TEXT, business TEXT, conversation_id TEXT)
ORDER BY c.customer, c.business, c.ord DESC
ON CONFLICT (customer_number, business_number) DO UPDATE SET
    conversation_id = EXCLUDED.conversation_id, status = EXCLUDED.status, updated_at = now();

-- name: close_conversation
UPDATE cxone_conversations SET status = 'CLOSED', updated_at = now()
WHERE conversation_id = %(conversation_id)s;

-- name: queue_update
-- Record an update for CXone and make sure the message's status job runs.
SELECT smsgw_queue_status_report(%(kind)s, %(message_id)s, %(status)s, %(reason_code)s,
                                 %(reason_message)s, %(external_id)s, %(at)s);

-- name: pending_status_updates
-- The updates still to push for one message, oldest first, with what CXone was
-- last told (NULL: nothing yet).
-- A DFO reply also carries its channel and thread (dfo_replies); NULL otherwise.
SELECT u.*, (SELECT status FROM cxone_message_status
             WHERE cxone_message_id = %(message_id)s) AS current_status,
       d.channel_id, d.thread_id
FROM cxone_status_updates u
LEFT JOIN dfo_replies d ON d.message_id = u.cxone_message_id
WHERE u.cxone_message_id = %(message_id)s AND u.finished_at IS NULL ORDER BY u.id;

-- name: finish_status_update
-- One statement per pushed (or skipped, refused) update: its outcome, what CXone
-- now shows (when pushed), and the audit entry.
WITH finished AS (
    UPDATE cxone_status_updates SET finished_at = now(), outcome = %(outcome)s
    WHERE id = %(id)s
), shown AS (
    INSERT INTO cxone_message_status (cxone_message_id, status, updated_at)
    SELECT %(message_id)s, %(status)s, now() WHERE %(outcome)s IN ('pushed', 'not_needed')
    ON CONFLICT (cxone_message_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
)
INSERT INTO audit_log (event, cxone_message_id, from_state, to_state, reason, source, details)
VALUES ('cxone.update_' || %(outcome)s, %(message_id)s, %(previous)s, %(status)s,
        %(reason)s, 'worker', %(details)s);

-- name: set_cxone_status
INSERT INTO cxone_message_status (cxone_message_id, status, updated_at)
VALUES (%(message_id)s, %(status)s, now())
ON CONFLICT (cxone_message_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now();
