-- A first response's time, kept until the ticket's priority is known: the reply (desk's topic)
-- may reach metrics before the triage (routing's), and the histogram is labelled by priority.
ALTER TABLE metrics.tickets ADD COLUMN first_response_seconds double precision;
