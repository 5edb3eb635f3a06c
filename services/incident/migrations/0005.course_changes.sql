-- Course changes the company causes (R8.3): each is told to every enrolled learner once, at
-- the providers' pace (the incident notices' releaser and rate), and learners' replies become
-- tickets linked to it. Course operations' decisions on learners' own change requests are
-- audited here too.
CREATE SEQUENCE incident.change_numbers;
CREATE TABLE incident.course_changes (
    change_id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE,
    change_ref text UNIQUE,  -- the sender's id on careloop.course_changes.v1
    course_id text NOT NULL,
    course_title text,
    kind text NOT NULL CHECK (kind IN ('teacher', 'schedule', 'cancellation', 'mode')),
    old text,
    new text,
    reason text NOT NULL,
    reason_en text,
    impact text NOT NULL,
    impact_en text,
    remedy text NOT NULL,
    remedy_en text,
    effective_at timestamptz NOT NULL,
    learners integer NOT NULL,
    by text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX course_changes_at ON incident.course_changes (at DESC);

-- One message per learner per change (or per decision), released in the transaction that
-- marks it released: each goes out exactly once. `reply_token` opens the learner's reply page.
CREATE TABLE incident.change_notices (
    notice_id uuid PRIMARY KEY,
    change_id uuid REFERENCES incident.course_changes,
    decision_ticket_id uuid,
    kind text NOT NULL CHECK (kind IN ('announcement', 'decision')),
    learner_key text NOT NULL,
    learner jsonb NOT NULL,
    channel text NOT NULL,
    locale text NOT NULL,
    reply_token text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    UNIQUE (change_id, learner_key),
    CHECK ((kind = 'announcement') = (change_id IS NOT NULL))
);
CREATE INDEX change_notices_pending ON incident.change_notices (channel, created_at)
    WHERE released_at IS NULL;

-- A learner's reply: the ticket it became, linked to the change.
CREATE TABLE incident.change_replies (
    ticket_id uuid PRIMARY KEY,
    change_id uuid NOT NULL REFERENCES incident.course_changes,
    notice_id uuid NOT NULL REFERENCES incident.change_notices,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    linked_at timestamptz
);
CREATE INDEX change_replies_change ON incident.change_replies (change_id);

-- Course operations' answer to a learner's own change request (a course_change ticket):
-- once per ticket, by whom and when.
CREATE TABLE incident.change_decisions (
    ticket_id uuid PRIMARY KEY,
    decision text NOT NULL CHECK (decision IN ('approved', 'declined')),
    note text NOT NULL,
    note_en text,
    by text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
