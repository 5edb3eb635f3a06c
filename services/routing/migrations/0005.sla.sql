-- SLA clocks that act (R5). One clock per ticket and target (first response, resolution):
-- the open minutes it used before its current run, and when that run started (NULL: paused
-- while the ticket waits on the learner). One timer per clock cycle and threshold (warning,
-- breach, management, at_risk), fired once: a reopening starts a new cycle of the resolution
-- clock. Replicas claim due timers with FOR UPDATE SKIP LOCKED in fire_at order.
CREATE TABLE routing.sla_clocks (
    ticket_id uuid NOT NULL,
    target text NOT NULL CHECK (target IN ('first_response', 'resolution')),
    cycle integer NOT NULL DEFAULT 0,
    target_minutes double precision NOT NULL CHECK (target_minutes >= 0),
    consumed_minutes double precision NOT NULL DEFAULT 0,
    running_since timestamptz,
    stopped_at timestamptz,
    PRIMARY KEY (ticket_id, target)
);

CREATE TABLE routing.sla_timers (
    ticket_id uuid NOT NULL,
    target text NOT NULL,
    cycle integer NOT NULL,
    threshold text NOT NULL CHECK (threshold IN ('warning', 'breach', 'management', 'at_risk')),
    fire_at timestamptz NOT NULL,
    fired_at timestamptz,
    PRIMARY KEY (ticket_id, target, cycle, threshold)
);
-- The next due timer is one probe of this index, however many tickets are open.
CREATE INDEX sla_timers_due ON routing.sla_timers (fire_at) WHERE fired_at IS NULL;

-- New or moved timers wake every replica's SLA loop, which then sleeps until the next one.
CREATE FUNCTION routing.sla_timers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('routing_sla', ''); RETURN NULL; END $$;
CREATE TRIGGER sla_timers_notify AFTER INSERT OR UPDATE OF fire_at ON routing.sla_timers
    FOR EACH STATEMENT EXECUTE FUNCTION routing.sla_timers_notify();

-- A team's recent throughput (assignments in the last minutes) for breach prediction.
CREATE INDEX assignments_recent ON routing.assignments (assigned_at);

-- Where SLA warnings and escalations reach an agent.
ALTER TABLE routing.agents ADD COLUMN IF NOT EXISTS email text;
