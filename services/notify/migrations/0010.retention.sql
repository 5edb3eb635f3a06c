-- Retention (R7.3): when notify first saw each recipient, and when each recipient and
-- delivery was pseudonymised (done once; the job skips them after). A ticket's deliveries are
-- found by its id, to tell whether any is still pending or recent.
ALTER TABLE notify.recipients
    ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN pseudonymised_at timestamptz;
ALTER TABLE notify.deliveries ADD COLUMN pseudonymised_at timestamptz;
CREATE INDEX recipients_to_pseudonymise ON notify.recipients (seen_at)
    WHERE pseudonymised_at IS NULL;
CREATE INDEX deliveries_to_pseudonymise ON notify.deliveries (id)
    WHERE pseudonymised_at IS NULL AND status <> 'pending';
CREATE INDEX deliveries_ticket ON notify.deliveries (ticket_id);
