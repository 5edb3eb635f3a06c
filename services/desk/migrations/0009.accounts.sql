-- Issue 9: desk owns the people who work tickets. An agent is a user: password (argon2),
-- teams, language, active. API tokens are per user, named, revocable; the seed's token
-- becomes each user's first one. Sessions, failed logins and every account change.
ALTER TABLE desk.agents
    ADD COLUMN email text,
    ADD COLUMN teams text[] NOT NULL DEFAULT '{}',
    ADD COLUMN language text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    ADD COLUMN password_hash text,
    ADD COLUMN active boolean NOT NULL DEFAULT true,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX agents_email ON desk.agents (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE desk.api_tokens (
    token_id uuid PRIMARY KEY,
    agent_id text NOT NULL REFERENCES desk.agents ON DELETE CASCADE,
    name text NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_agent ON desk.api_tokens (agent_id);
INSERT INTO desk.api_tokens (token_id, agent_id, name, token_sha256)
SELECT gen_random_uuid(), agent_id, 'seed', token_sha256 FROM desk.agents;
ALTER TABLE desk.agents DROP COLUMN token_sha256;

-- The cookie holds a random id; only its SHA-256 is stored.
CREATE TABLE desk.sessions (
    session_sha256 text PRIMARY KEY,
    agent_id text NOT NULL REFERENCES desk.agents ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    address text NOT NULL
);
CREATE INDEX sessions_agent ON desk.sessions (agent_id);

-- Failed logins within the lockout window, per login name and per client address.
CREATE TABLE desk.login_failures (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    login text NOT NULL,
    address text NOT NULL
);
CREATE INDEX login_failures_login ON desk.login_failures (login, at);
CREATE INDEX login_failures_address ON desk.login_failures (address, at);
CREATE INDEX login_failures_at ON desk.login_failures (at);

-- Who changed which account, how and when (never a password or a token).
CREATE TABLE desk.account_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    agent_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX account_audit_agent ON desk.account_audit (agent_id, id);
