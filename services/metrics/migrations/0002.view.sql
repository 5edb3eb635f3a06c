-- One row per ticket, derived from events, for the gauges that need state.
CREATE TABLE metrics.tickets (
    ticket_id uuid PRIMARY KEY,
    channel text,
    category text,
    priority text,
    team text,
    status text NOT NULL DEFAULT 'new',
    status_at timestamptz NOT NULL DEFAULT '-infinity',
    created_at timestamptz,
    first_response_due_at timestamptz,
    first_responded_at timestamptz
);
CREATE INDEX tickets_open ON metrics.tickets (status) WHERE status <> 'closed';
