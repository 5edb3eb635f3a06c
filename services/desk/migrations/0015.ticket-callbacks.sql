-- Issue 10 item 4: call-backs on closed tickets (R9.3, 004 §三.3). A sample of closed tickets
-- (CARELOOP_DESK_CALLBACK_SAMPLE, by ticket id) and every closed complaint without a case get
-- one call-back each, due when the ticket closes; a complaint with a case has the case's own.
CREATE TABLE desk.ticket_callbacks (
    ticket_id uuid PRIMARY KEY REFERENCES desk.tickets,
    reason text NOT NULL CHECK (reason IN ('sample', 'complaint')),
    due_at timestamptz NOT NULL,
    done_at timestamptz,
    done_by text,
    reached boolean,
    score smallint CHECK (score BETWEEN 1 AND 5),
    note text,
    CHECK (reached OR score IS NULL)
);
CREATE INDEX ticket_callbacks_waiting ON desk.ticket_callbacks (due_at) WHERE done_at IS NULL;

-- A complaint case's call-back records the same outcome.
ALTER TABLE desk.cases ADD COLUMN callback_reached boolean,
    ADD COLUMN callback_score smallint CHECK (callback_score BETWEEN 1 AND 5);
