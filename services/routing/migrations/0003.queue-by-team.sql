-- Which teams have a queue is asked once per batch; answer it from an index.
CREATE INDEX queue_team ON routing.queue (team, priority_rank, enqueued_at);
