-- Surveys due after a resolution, and the learners' answers.
CREATE TABLE survey.surveys (
    survey_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL,
    resolution_event_id uuid NOT NULL UNIQUE,
    token text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'requested', 'answered', 'cancelled')),
    due_at timestamptz NOT NULL,
    requested_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_due ON survey.surveys (due_at) WHERE status = 'scheduled';
CREATE INDEX surveys_ticket ON survey.surveys (ticket_id);

CREATE TABLE survey.answers (
    survey_id uuid PRIMARY KEY REFERENCES survey.surveys,
    overall smallint NOT NULL CHECK (overall BETWEEN 1 AND 5),
    response_speed smallint NOT NULL CHECK (response_speed BETWEEN 1 AND 5),
    problem_solving smallint NOT NULL CHECK (problem_solving BETWEEN 1 AND 5),
    attitude smallint NOT NULL CHECK (attitude BETWEEN 1 AND 5),
    comment text,
    answered_at timestamptz NOT NULL DEFAULT now()
);
