-- Open incidents (careloop.incidents.v1): a new ticket matching one is held, not placed.
CREATE TABLE routing.incidents (
    incident_id uuid PRIMARY KEY,
    number text NOT NULL,
    severity text NOT NULL,
    criteria jsonb NOT NULL,
    status_url text NOT NULL,
    opened_at timestamptz NOT NULL
);

-- Tickets held for an incident: neither assigned nor queued, their SLA clocks paused. `linked`:
-- the incident linked it (else routing matched it on arrival and the incident has not yet);
-- `agent_id`: who held it before, preferred when it is placed again.
CREATE TABLE routing.held (
    ticket_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    status_url text NOT NULL,
    linked boolean NOT NULL DEFAULT false,
    agent_id text,
    held_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX held_incident ON routing.held (incident_id);
