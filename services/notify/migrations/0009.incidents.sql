-- A ticket held for an open incident (routing's ticket.routed names it): its confirmation
-- says it is a known problem and points to the incident's status page instead of promising a
-- wait. (An incident notice needs no column of its own: it is a delivery with its own channel
-- and address, and a ticket-less notice has a recipient row keyed by the notice's id.)
ALTER TABLE notify.recipients ADD COLUMN incident_url text;
