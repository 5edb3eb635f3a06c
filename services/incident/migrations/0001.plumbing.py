"""incident's schema, outbox and inbox."""

from shared.plumbing import plumbing_steps

steps = plumbing_steps("incident")
