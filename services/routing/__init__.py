"""routing: triage, agents and skills, capacity, queues and SLA due times."""
