-- What the business series need of each ticket: its resolution due time (the overdue gauge),
-- who resolved it last and when (per-agent scores), how often it was reopened and when last
-- (first-contact resolution), and the last resolution breach routing raised (resolution SLA).
ALTER TABLE metrics.tickets
    ADD COLUMN resolution_due_at timestamptz,
    ADD COLUMN resolved_by text,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN reopens integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened_at timestamptz,
    ADD COLUMN resolution_breached_at timestamptz;
