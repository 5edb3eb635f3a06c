"""People come from desk (careloop.people.v1): routing's read model of them, and agents that
desk has disabled (offline, given nothing new). A person desk creates has no seed token:
their tokens are in the people table."""

from yoyo import step

from shared.people import people_steps

steps = [
    *people_steps("routing"),
    step(
        "ALTER TABLE routing.agents ADD COLUMN active boolean NOT NULL DEFAULT true, "
        "ALTER COLUMN token_sha256 DROP NOT NULL",
        "ALTER TABLE routing.agents DROP COLUMN active",
    ),
]
