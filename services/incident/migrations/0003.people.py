"""The people who may use incident's API, as desk announces them (shared.people)."""

from shared.people import people_steps

steps = people_steps("incident")
