"""notify: turns ticket events into messages to learners and records every delivery."""
