-- SLA warnings and escalations go to agents, not to the ticket's learner: such a delivery
-- carries its own address (NULL: the ticket's recipient's, as before).
ALTER TABLE notify.deliveries ADD COLUMN address text;
