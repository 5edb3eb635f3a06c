-- Fewer index entries per ticket (issue 6, WAL per ticket).
-- The history is read per ticket in order: its key is (ticket_id, id) itself, instead of a
-- key on id and a second index on (ticket_id, id), so each row writes one index entry.
ALTER TABLE desk.history DROP CONSTRAINT history_pkey;
ALTER TABLE desk.history ADD PRIMARY KEY (ticket_id, id);
DROP INDEX desk.history_ticket;
-- A confirmation token's hash is looked up only where one is set: tickets without one (most
-- of their life) write no entry for it.
ALTER TABLE desk.tickets DROP CONSTRAINT tickets_confirm_token_key;
CREATE UNIQUE INDEX tickets_confirm_token ON desk.tickets (confirm_token_sha256)
    WHERE confirm_token_sha256 IS NOT NULL;
