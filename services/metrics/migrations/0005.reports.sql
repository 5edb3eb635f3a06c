-- What the reports need beyond the gauges' view (metrics.tickets): who the learner is (a hash,
-- for repeat problems), their group and course line, the subject (top problems), resolution
-- and closing times, every reopening, and the survey answers; then the kept reports and the
-- improvement actions. Each fact is written by its own key, so applying an event twice is once.
CREATE TABLE metrics.report_tickets (
    ticket_id uuid PRIMARY KEY,
    learner_key text,
    tier text,
    course_line text,
    subject text,
    resolution_due_at timestamptz,
    resolved_at timestamptz,
    last_resolved_at timestamptz,
    closed_at timestamptz
) WITH (fillfactor = 80);
CREATE INDEX report_tickets_learner ON metrics.report_tickets (learner_key)
    WHERE learner_key IS NOT NULL;

CREATE TABLE metrics.report_reopens (
    ticket_id uuid NOT NULL,
    reopened_at timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, reopened_at)
);

CREATE TABLE metrics.report_surveys (
    survey_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL,
    overall smallint NOT NULL,
    response_speed smallint NOT NULL,
    problem_solving smallint NOT NULL,
    attitude smallint NOT NULL,
    answered_at timestamptz NOT NULL
);
CREATE INDEX report_surveys_answered ON metrics.report_surveys (answered_at);

-- The creation cohort of a period is read by time.
CREATE INDEX tickets_created ON metrics.tickets (created_at);

-- One report per kind and period, whichever replica made it.
CREATE TABLE metrics.reports (
    kind text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    language text NOT NULL,
    html text NOT NULL,
    pdf bytea NOT NULL,
    summary text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    emailed_at timestamptz,
    emailed_to text[],
    PRIMARY KEY (kind, period_start)
);

CREATE TABLE metrics.improvement_actions (
    action_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    problem text NOT NULL,
    department text NOT NULL,
    owner text NOT NULL,
    target_metric text NOT NULL,
    target_value double precision,
    started_on date NOT NULL,
    deadline date NOT NULL,
    status text NOT NULL DEFAULT 'planned',
    notes text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (deadline >= started_on)
);
