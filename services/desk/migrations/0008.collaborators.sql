-- Issue 8 (R3.3): the other teams a ticket needs, as triage saw it.
ALTER TABLE desk.tickets ADD COLUMN collaborators text[] NOT NULL DEFAULT '{}';
