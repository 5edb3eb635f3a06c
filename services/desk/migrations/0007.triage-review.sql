-- Issue 8: how sure triage was, and the tickets it was not sure of (reviewed by a person).
ALTER TABLE desk.tickets
    ADD COLUMN triage_confidence real,
    ADD COLUMN triage_reason text,
    ADD COLUMN needs_review boolean NOT NULL DEFAULT false;
CREATE INDEX tickets_needs_review ON desk.tickets (created_at) WHERE needs_review;
