-- A confirmation waits for its triage: when a recipient's triage arrives, the senders wake
-- (as they do for a new delivery) instead of finding it on their next look.
CREATE TRIGGER recipients_notify AFTER UPDATE ON notify.recipients
    FOR EACH STATEMENT EXECUTE FUNCTION notify.deliveries_notify();
