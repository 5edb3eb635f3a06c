-- A ticket's row is written when it is created and again as its status moves. With no index
-- on status, and room left on each page, those updates are HOT: no index entry per change.
-- The gauges' scan of open tickets, every few seconds, reads the table instead.
DROP INDEX metrics.tickets_open;
ALTER TABLE metrics.tickets SET (fillfactor = 70);
