-- Agents and their skills, triaged tickets, assignments and the team queues.
CREATE TABLE routing.agents (
    agent_id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    teams text[] NOT NULL,
    languages text[] NOT NULL,
    capacity integer NOT NULL CHECK (capacity >= 0),
    online boolean NOT NULL,
    token_sha256 text NOT NULL UNIQUE
);

CREATE TABLE routing.tickets (
    ticket_id uuid PRIMARY KEY,
    channel text NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    team text NOT NULL,
    language text NOT NULL,
    triaged_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routing.assignments (
    id bigserial PRIMARY KEY,
    ticket_id uuid NOT NULL,
    agent_id text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
CREATE UNIQUE INDEX assignments_active ON routing.assignments (ticket_id) WHERE released_at IS NULL;
CREATE INDEX assignments_agent_active ON routing.assignments (agent_id) WHERE released_at IS NULL;

CREATE TABLE routing.queue (
    ticket_id uuid PRIMARY KEY,
    team text NOT NULL,
    language text NOT NULL,
    priority text NOT NULL,
    priority_rank smallint NOT NULL,
    preferred_agent text,
    supervisor boolean NOT NULL DEFAULT false,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_order ON routing.queue (priority_rank, enqueued_at);
