-- The follow-up programme's periodic surveys (R9.3, 002 §五.1-2). survey keeps the learners
-- the LMS's snapshots describe; a periodic survey is one per (learner, period), not about a
-- ticket, and carries the courses its form asks about.
CREATE TABLE survey.learners (
    learner_id text PRIMARY KEY,
    name text,
    email text,
    locale text NOT NULL,
    courses jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX learners_updated ON survey.learners (updated_at);

ALTER TABLE survey.surveys
    ALTER COLUMN ticket_id DROP NOT NULL,
    ALTER COLUMN resolution_event_id DROP NOT NULL,
    ADD COLUMN kind text NOT NULL DEFAULT 'resolution' CHECK (kind IN ('resolution', 'periodic')),
    ADD COLUMN learner_id text,
    ADD COLUMN period text,
    ADD COLUMN courses jsonb,
    ADD CONSTRAINT surveys_kind_fields CHECK (
        (kind = 'resolution' AND ticket_id IS NOT NULL AND resolution_event_id IS NOT NULL)
        OR (kind = 'periodic' AND learner_id IS NOT NULL AND learner_key IS NOT NULL
            AND period IS NOT NULL AND courses IS NOT NULL));
CREATE UNIQUE INDEX surveys_periodic ON survey.surveys (learner_id, period) WHERE kind = 'periodic';

CREATE TABLE survey.periodic_answers (
    survey_id uuid PRIMARY KEY REFERENCES survey.surveys,
    overall smallint NOT NULL CHECK (overall BETWEEN 1 AND 5),
    response_speed smallint NOT NULL CHECK (response_speed BETWEEN 1 AND 5),
    problem_solving smallint NOT NULL CHECK (problem_solving BETWEEN 1 AND 5),
    attitude smallint NOT NULL CHECK (attitude BETWEEN 1 AND 5),
    teacher_level smallint NOT NULL CHECK (teacher_level BETWEEN 1 AND 5),
    teaching_method smallint NOT NULL CHECK (teaching_method BETWEEN 1 AND 5),
    teaching_attitude smallint NOT NULL CHECK (teaching_attitude BETWEEN 1 AND 5),
    courses jsonb NOT NULL,  -- [{course_id, usefulness, difficulty, structure}]
    comment text,
    answered_at timestamptz NOT NULL DEFAULT now()
);
