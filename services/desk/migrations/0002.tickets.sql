-- The Ticket aggregate: number, status, learner, routing facts, replies and history.
CREATE SEQUENCE desk.ticket_number_seq;

CREATE FUNCTION desk.next_ticket_number() RETURNS text LANGUAGE sql AS $$
    SELECT 'CL-' || lpad(v::text, greatest(6, length(v::text)), '0')
    FROM nextval('desk.ticket_number_seq') AS v
$$;

CREATE TABLE desk.tickets (
    ticket_id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE DEFAULT desk.next_ticket_number(),
    channel text NOT NULL,
    source text,
    external_id text,
    learner jsonb NOT NULL,
    subject text NOT NULL,
    description text NOT NULL,
    course_id text,
    order_id text,
    language text NOT NULL,
    attachments jsonb NOT NULL DEFAULT '[]',
    status text NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'queued', 'assigned', 'resolved', 'closed', 'reopened')),
    category text,
    priority text,
    team text,
    assignee_id text,
    needs_supervisor boolean NOT NULL DEFAULT false,
    first_response_due_at timestamptz,
    resolution_due_at timestamptz,
    submitted_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    first_responded_at timestamptz,
    resolved_at timestamptz,
    closed_at timestamptz,
    confirm_token text UNIQUE,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_assignee ON desk.tickets (assignee_id, status);
CREATE INDEX tickets_resolved ON desk.tickets (resolved_at) WHERE status = 'resolved';

CREATE TABLE desk.replies (
    reply_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL REFERENCES desk.tickets,
    agent_id text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_ticket ON desk.replies (ticket_id, created_at);

-- Every change to a ticket, in order: the audit trail and the archived history (R7.3, R12.3).
CREATE TABLE desk.history (
    id bigserial PRIMARY KEY,
    ticket_id uuid NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    actor text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX history_ticket ON desk.history (ticket_id, id);

CREATE TABLE desk.agents (
    agent_id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    token_sha256 text NOT NULL UNIQUE
);
