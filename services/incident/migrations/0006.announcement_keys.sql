-- A client that retries an announcement after losing the answer (a timeout, a dropped
-- connection) sends the same Idempotency-Key: the learners are told once, and the retry gets
-- the first answer's count.
ALTER TABLE incident.announcements ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX announcements_idempotency ON incident.announcements (incident_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
