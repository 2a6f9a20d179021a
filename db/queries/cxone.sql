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

-- name: close_conversation
UPDATE cxone_conversations SET status = 'CLOSED', updated_at = now()
WHERE conversation_id = %(conversation_id)s;

-- name: add_status_update
INSERT INTO cxone_status_updates (cxone_message_id, status, reason_code, reason_message,
                                  external_id, receipt_at)
VALUES (%(message_id)s, %(status)s, %(reason_code)s, %(reason_message)s, %(external_id)s,
        COALESCE(%(receipt_at)s, now()))
RETURNING id;

-- name: pending_status_updates
SELECT * FROM cxone_status_updates
WHERE cxone_message_id = %(message_id)s AND finished_at IS NULL ORDER BY id;

-- name: finish_status_update
UPDATE cxone_status_updates SET finished_at = now(), outcome = %(outcome)s WHERE id = %(id)s;

-- name: get_cxone_status
SELECT status FROM cxone_message_status WHERE cxone_message_id = %(message_id)s;

-- name: set_cxone_status
INSERT INTO cxone_message_status (cxone_message_id, status, updated_at)
VALUES (%(message_id)s, %(status)s, now())
ON CONFLICT (cxone_message_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now();
