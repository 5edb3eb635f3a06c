-- A ticket can wait on the learner (R5.3): pending_learner pauses its SLA clocks until the
-- learner writes again.
ALTER TABLE desk.tickets DROP CONSTRAINT tickets_status_check;
ALTER TABLE desk.tickets ADD CONSTRAINT tickets_status_check CHECK (
    status IN ('new', 'queued', 'assigned', 'resolved', 'closed', 'reopened', 'pending_learner')
);
