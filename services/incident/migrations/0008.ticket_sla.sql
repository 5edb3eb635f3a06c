-- The linked tickets' SLA for the post-incident report: the due times routing set
-- (ticket.routed, before any hold paused them), when each ticket was first answered and first
-- resolved (ticket.replied, ticket.resolved), and when routing said a target breached
-- (sla.breached).
ALTER TABLE incident.tickets
    ADD COLUMN first_response_due_at timestamptz,
    ADD COLUMN resolution_due_at timestamptz,
    ADD COLUMN answered_at timestamptz,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN first_response_breached_at timestamptz,
    ADD COLUMN resolution_breached_at timestamptz;
