-- The audit trail is append-only (a trigger refuses UPDATE and DELETE).

-- name: append
INSERT INTO audit_log (event, cxone_message_id, twilio_message_sid, phone_number, from_state,
                       to_state, reason, source, details)
VALUES (%(event)s, %(message_id)s, %(sid)s, %(phone)s, %(from_state)s, %(to_state)s,
        %(reason)s, %(source)s, %(details)s);

-- name: for_message
-- Every entry about one message: by its CXone id, or by any of its Twilio SIDs.
SELECT * FROM audit_log
WHERE cxone_message_id = %(message_id)s
   OR twilio_message_sid = ANY(%(sids)s)
ORDER BY id;
