"""People come from desk (careloop.people.v1) into knowledge's read model; the seed-only
agents table goes."""

from yoyo import step

from shared.people import people_steps

steps = [*people_steps("knowledge"), step("DROP TABLE knowledge.agents")]
