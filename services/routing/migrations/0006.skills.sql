-- Agents' skills, seniority, schedules and liveness; teams; channel weights; the admin audit.
-- Empty skill lists mean "any": an agent with no categories takes every category of their teams.
ALTER TABLE routing.agents
    ADD COLUMN senior boolean NOT NULL DEFAULT false,
    ADD COLUMN categories text[] NOT NULL DEFAULT '{}',
    ADD COLUMN channels text[] NOT NULL DEFAULT '{}',
    ADD COLUMN course_lines text[] NOT NULL DEFAULT '{}',
    ADD COLUMN priorities text[] NOT NULL DEFAULT '{}',
    ADD COLUMN vip boolean NOT NULL DEFAULT false,
    -- NULL: always on shift; else {"timezone": ..., "weekly": {"mon": [["09:00", "18:00"]], ...}}
    ADD COLUMN schedule jsonb,
    -- Presence lasts CARELOOP_ROUTING_PRESENCE_TTL_SECONDS past the last heartbeat.
    ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE routing.teams (
    team text PRIMARY KEY,
    name text NOT NULL
);
INSERT INTO routing.teams (team, name)
SELECT DISTINCT t, t FROM routing.agents, unnest(teams) AS t
ON CONFLICT DO NOTHING;

-- How much of an agent's capacity one open ticket of the channel takes (chat 1, e-mail 0.5).
CREATE TABLE routing.channel_weights (
    channel text PRIMARY KEY,
    weight numeric(6, 3) NOT NULL CHECK (weight > 0 AND weight <= 100)
);
INSERT INTO routing.channel_weights (channel, weight) VALUES
    ('web', 1), ('app', 1), ('email', 0.5), ('hotline', 1), ('chat', 1), ('wechat', 1),
    ('weibo', 1), ('suggestion_box', 0.5), ('service', 1);

-- The weight an assignment took, in thousandths, so that a rebuild restores the same load.
ALTER TABLE routing.assignments ADD COLUMN weight_milli integer NOT NULL DEFAULT 1000;

-- What re-placing a ticket (reopened, drained from the queue) needs to match skills again.
ALTER TABLE routing.tickets
    ADD COLUMN course_id text,
    ADD COLUMN vip boolean NOT NULL DEFAULT false;

-- Who changed what in the admin API, before and after.
CREATE TABLE routing.audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    before jsonb,
    after jsonb
);
CREATE INDEX audit_subject ON routing.audit (subject, id);
