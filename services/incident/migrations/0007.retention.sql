-- Retention (R7.3): when each row that names a learner was pseudonymised (done once; the job
-- skips it after), and indexes that find the rows still to do by age.
ALTER TABLE incident.tickets ADD COLUMN pseudonymised_at timestamptz;
ALTER TABLE incident.notices ADD COLUMN pseudonymised_at timestamptz;
ALTER TABLE incident.change_notices ADD COLUMN pseudonymised_at timestamptz;
ALTER TABLE incident.compensation_items ADD COLUMN pseudonymised_at timestamptz;
ALTER TABLE incident.change_decisions ADD COLUMN pseudonymised_at timestamptz;
CREATE INDEX notices_to_pseudonymise ON incident.notices (created_at)
    WHERE pseudonymised_at IS NULL AND released_at IS NOT NULL;
CREATE INDEX change_notices_to_pseudonymise ON incident.change_notices (created_at)
    WHERE pseudonymised_at IS NULL AND released_at IS NOT NULL;
CREATE INDEX compensation_items_to_pseudonymise ON incident.compensation_items (released_at)
    WHERE pseudonymised_at IS NULL AND released_at IS NOT NULL;
CREATE INDEX change_decisions_to_pseudonymise ON incident.change_decisions (at)
    WHERE pseudonymised_at IS NULL;
CREATE INDEX learners_updated ON incident.learners (updated_at);
