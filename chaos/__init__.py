"""The fault suite: `bin/careloop chaos` runs faults against a private running stack and counts
what careloop lost, duplicated or over-assigned."""
