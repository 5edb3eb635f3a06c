-- Issue 9: routing's view of each agent (agent.status on careloop.routing.v1), for the
-- supervisor board: presence and live load against capacity. One row per agent, the newest
-- `at` wins; desk never reads routing's schema.
CREATE TABLE desk.agent_status (
    agent_id text PRIMARY KEY,
    online boolean NOT NULL,
    available boolean NOT NULL,
    on_shift boolean NOT NULL,
    active boolean NOT NULL,
    capacity integer NOT NULL,
    used double precision NOT NULL,
    load integer NOT NULL,
    last_seen_at timestamptz NOT NULL,
    teams text[] NOT NULL,
    at timestamptz NOT NULL
);
