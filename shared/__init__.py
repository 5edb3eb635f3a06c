"""Code every careloop service shares: events, settings, Kafka, Postgres, outbox and inbox."""
