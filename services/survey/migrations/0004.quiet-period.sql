-- The quiet period (R9.3): a learner is never sent two surveys within it. Each ticket's
-- learner (by learner_id, else e-mail) comes from ticket.created; a sent survey keeps the
-- learner it went to, and one that fell in the quiet period is kept as 'quiet', unsent.
CREATE TABLE survey.ticket_learners (
    ticket_id uuid PRIMARY KEY,
    learner_key text NOT NULL
);
ALTER TABLE survey.surveys ADD COLUMN learner_key text;
CREATE INDEX surveys_learner_sent ON survey.surveys (learner_key, requested_at)
    WHERE requested_at IS NOT NULL;
ALTER TABLE survey.surveys DROP CONSTRAINT surveys_status_check;
ALTER TABLE survey.surveys ADD CONSTRAINT surveys_status_check
    CHECK (status IN ('scheduled', 'requested', 'answered', 'cancelled', 'quiet'));
ALTER TABLE survey.surveys DROP CONSTRAINT surveys_sent_have_a_token;
ALTER TABLE survey.surveys ADD CONSTRAINT surveys_sent_have_a_token
    CHECK (status IN ('scheduled', 'cancelled', 'quiet') OR token_sha256 IS NOT NULL);
