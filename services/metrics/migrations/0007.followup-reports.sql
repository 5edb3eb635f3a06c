-- The follow-up programme's results for the reports (R9.3, R9.4): each periodic survey answer,
-- its enrolled courses' scores by course line, and every call-back made. Each row is written by
-- its own key, so applying an event twice is once.
CREATE TABLE metrics.report_periodic (
    survey_id uuid PRIMARY KEY,
    overall smallint NOT NULL,
    response_speed smallint NOT NULL,
    problem_solving smallint NOT NULL,
    attitude smallint NOT NULL,
    teacher_level smallint NOT NULL,
    teaching_method smallint NOT NULL,
    teaching_attitude smallint NOT NULL,
    answered_at timestamptz NOT NULL
);
CREATE INDEX report_periodic_answered ON metrics.report_periodic (answered_at);

CREATE TABLE metrics.report_periodic_courses (
    survey_id uuid NOT NULL,
    course_id text NOT NULL,
    course_line text NOT NULL,
    usefulness smallint NOT NULL,
    difficulty smallint NOT NULL,
    structure smallint NOT NULL,
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (survey_id, course_id)
);
CREATE INDEX report_periodic_courses_answered ON metrics.report_periodic_courses (answered_at);

CREATE TABLE metrics.report_callbacks (
    ticket_id uuid NOT NULL,
    recorded_at timestamptz NOT NULL,
    reason text NOT NULL,
    reached boolean NOT NULL,
    score smallint,
    PRIMARY KEY (ticket_id, recorded_at)
);
CREATE INDEX report_callbacks_recorded ON metrics.report_callbacks (recorded_at);
