-- Issue 9 (items 2 and 4): what agents do to a ticket (notes, macros, transfers, merges,
-- resolution codes), search, and retention.

-- Internal notes: agents only, never shown to the learner.
CREATE TABLE desk.notes (
    note_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL REFERENCES desk.tickets,
    agent_id text NOT NULL,
    body text NOT NULL,
    mentions text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_ticket ON desk.notes (ticket_id, created_at);

-- Canned replies with variables, kept by supervisors.
CREATE TABLE desk.macros (
    macro_id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    body text NOT NULL,
    language text CHECK (language IN ('zh', 'en')),
    updated_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE desk.tickets
    ADD COLUMN resolution_code text,
    -- A duplicate closes into the ticket that carries on its conversation (R6.3).
    ADD COLUMN merged_into uuid,
    -- Retention (R7.3): closed tickets leave the working lists, then lose personal data.
    ADD COLUMN archived_at timestamptz,
    ADD COLUMN pseudonymised_at timestamptz,
    -- The ticket's search words (jieba's for Chinese, made in Python by desk's indexer),
    -- and the `updated_at` they were made at; NULL: to be made (a new ticket, a learner's
    -- message, a merge, pseudonymisation: what changes the text).
    ADD COLUMN search tsvector,
    ADD COLUMN search_of timestamptz;
CREATE INDEX tickets_search ON desk.tickets USING gin (search);
-- The indexer's work list.
CREATE INDEX tickets_search_stale ON desk.tickets (updated_at) WHERE search_of IS NULL;
CREATE INDEX tickets_closed ON desk.tickets (closed_at) WHERE status = 'closed';
