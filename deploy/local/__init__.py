"""The local, Docker-free stack: real Kafka-API broker, PostgreSQL, Redis and SMTP sink on loopback."""
