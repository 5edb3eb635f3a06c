-- Retention (R7.3): when each settled survey was pseudonymised (done once; the job skips it
-- after), and when survey first saw each ticket's learner, so that a ticket's learner key goes
-- after the retention period whether or not it was ever surveyed.
ALTER TABLE survey.surveys ADD COLUMN pseudonymised_at timestamptz;
CREATE INDEX surveys_to_pseudonymise ON survey.surveys (created_at)
    WHERE pseudonymised_at IS NULL AND status <> 'scheduled';
ALTER TABLE survey.ticket_learners ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX ticket_learners_seen ON survey.ticket_learners (seen_at);
