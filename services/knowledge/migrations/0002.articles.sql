-- Articles (their current version), every version ever saved, learners' votes, the agents
-- who may read or edit them, and what was offered for each ticket.
CREATE TABLE knowledge.articles (
    article_id uuid PRIMARY KEY,
    version integer NOT NULL CHECK (version >= 1),
    status text NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    language text NOT NULL CHECK (language IN ('zh', 'en')),
    category text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    title text NOT NULL,
    body text NOT NULL,
    owner_id text NOT NULL,
    source_ticket_id uuid,
    -- jieba's words of the title (weight A), tags (B) and body (C), made by the service: the
    -- 'english' configuration stems English words and leaves Chinese words as they are.
    search tsvector NOT NULL,
    helpful integer NOT NULL DEFAULT 0,
    not_helpful integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX articles_search ON knowledge.articles USING gin (search);
CREATE INDEX articles_listed ON knowledge.articles (status, language, category);

CREATE TABLE knowledge.article_versions (
    article_id uuid NOT NULL REFERENCES knowledge.articles,
    version integer NOT NULL,
    status text NOT NULL,
    language text NOT NULL,
    category text NOT NULL,
    tags text[] NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    change text NOT NULL,
    edited_by text NOT NULL,
    edited_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, version)
);

-- One vote per article and voter (the digest of the page's cookie); a voter may change it.
CREATE TABLE knowledge.votes (
    article_id uuid NOT NULL REFERENCES knowledge.articles,
    voter_sha256 text NOT NULL,
    helpful boolean NOT NULL,
    voted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, voter_sha256)
);

CREATE TABLE knowledge.agents (
    agent_id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    token_sha256 text NOT NULL UNIQUE
);

-- The articles offered for each new ticket (once per ticket, however often it is delivered).
CREATE TABLE knowledge.offers (
    ticket_id uuid PRIMARY KEY,
    channel text NOT NULL,
    language text NOT NULL,
    article_ids uuid[] NOT NULL,
    offered_at timestamptz NOT NULL DEFAULT now()
);
