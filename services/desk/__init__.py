"""desk: owns the Ticket aggregate and the agents' work on it."""
