-- Issue 10 item 1: complaint cases. A ticket carries at most one case: the investigation
-- (notes, responsible department and person, finding), its remedies with their approvals,
-- what the acting systems answered, and the call-back after the case closed.
CREATE TABLE desk.cases (
    case_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL UNIQUE REFERENCES desk.tickets,
    opened_by text NOT NULL,
    department text,
    responsible text,
    teacher_id text,
    course_id text,
    order_id text,
    order_value numeric(12, 2) CHECK (order_value > 0),
    finding text CHECK (finding IN ('upheld', 'partly_upheld', 'not_upheld')),
    finding_summary text,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    outcome text,
    opened_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    closed_by text,
    -- A closed case is archived: out of the working lists, kept whole for the record.
    archived_at timestamptz,
    callback_due_at timestamptz,
    callback_raised_at timestamptz,
    callback_done_at timestamptz,
    callback_by text,
    callback_outcome text
);
CREATE INDEX cases_open ON desk.cases (opened_at) WHERE archived_at IS NULL;
CREATE INDEX cases_course ON desk.cases (course_id, opened_at) WHERE course_id IS NOT NULL;
CREATE INDEX cases_teacher ON desk.cases (teacher_id, opened_at) WHERE teacher_id IS NOT NULL;
CREATE INDEX cases_callback_due ON desk.cases (callback_due_at)
    WHERE callback_due_at IS NOT NULL AND callback_raised_at IS NULL;
CREATE INDEX cases_callback_raised ON desk.cases (callback_due_at)
    WHERE callback_raised_at IS NOT NULL AND callback_done_at IS NULL;

CREATE TABLE desk.case_notes (
    note_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES desk.cases,
    agent_id text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_notes_case ON desk.case_notes (case_id, created_at);

CREATE TABLE desk.remedies (
    remedy_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES desk.cases,
    ticket_id uuid NOT NULL,
    type text NOT NULL
        CHECK (type IN ('apology', 'refund', 'extension', 'lessons', 'coupon', 'points',
                        'replacement')),
    amount numeric(12, 2) CHECK (amount > 0),
    currency text,
    days integer CHECK (days > 0),
    lessons integer CHECK (lessons > 0),
    points integer CHECK (points > 0),
    course_id text,
    description text,
    approvals_needed smallint NOT NULL CHECK (approvals_needed BETWEEN 0 AND 2),
    status text NOT NULL
        CHECK (status IN ('proposed', 'declined', 'requested', 'acknowledged', 'rejected',
                          'done')),
    proposed_by text NOT NULL,
    proposed_at timestamptz NOT NULL DEFAULT now(),
    approved_at timestamptz,
    requested_at timestamptz,
    -- What the acting system answered on careloop.remedies.acks.v1.
    answered_at timestamptz,
    answer_system text,
    answer_reference text,
    answer_reason text
);
CREATE INDEX remedies_case ON desk.remedies (case_id, proposed_at);
CREATE INDEX remedies_awaiting ON desk.remedies (requested_at) WHERE status = 'requested';

-- Every approval and refusal of a remedy, by whom and when (the audit; the ticket's history
-- records them too). One decision per approver and remedy.
CREATE TABLE desk.remedy_approvals (
    remedy_id uuid NOT NULL REFERENCES desk.remedies,
    approver_id text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('approved', 'declined')),
    note text,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (remedy_id, approver_id)
);
