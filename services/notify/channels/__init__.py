"""notify's channels: one sender each (compose, send, classify errors)."""
