-- Compensation batches for an incident's affected learners (coupon, points or a course
-- extension), approved by a second supervisor, and one remedy per learner issued on
-- careloop.remedies.v1 and tracked until the acting system answers.
CREATE TABLE incident.compensations (
    batch_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    kind text NOT NULL CHECK (kind IN ('coupon', 'points', 'extension')),
    amount text,
    currency text,
    points integer CHECK (points >= 1),
    days integer CHECK (days >= 1),
    course_id text,
    reason text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    approved_by text,
    approved_at timestamptz,
    learners integer
);

-- One remedy per learner, incident and kind, whatever batches ask for it again.
CREATE TABLE incident.compensation_items (
    remedy_id uuid PRIMARY KEY,
    batch_id uuid NOT NULL REFERENCES incident.compensations,
    incident_id uuid NOT NULL,
    kind text NOT NULL,
    learner_key text NOT NULL,
    learner jsonb NOT NULL,
    ticket_id uuid NOT NULL,
    number text NOT NULL,
    released_at timestamptz,
    acknowledged_at timestamptz,
    reference text,
    rejected_reason text,
    UNIQUE (incident_id, kind, learner_key)
);
CREATE INDEX compensation_items_pending ON incident.compensation_items (batch_id)
    WHERE released_at IS NULL;
