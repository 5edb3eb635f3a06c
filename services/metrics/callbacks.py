"""Call-back outcomes (desk's `callback.recorded`) in the same analysis as the surveys: a score
is a `careloop_survey_score{dimension="callback"}` observation, and every call-back counts by
why it was made and whether the learner answered."""

from typing import Any

import asyncpg
from prometheus_client import Counter

from services.metrics import exporter
from shared.events import CallbackRecorded, Envelope
from shared.inbox import AfterCommit, Handler

CALLBACKS = Counter(
    "careloop_callbacks_total",
    "Call-backs made after a ticket or complaint case closed, by reason (sample, complaint, "
    "case) and whether the learner was reached.",
    ["reason", "reached"],
)
DIMENSION = "callback"


async def on_recorded(_: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    made: list[CallbackRecorded] = [e.data for e in events]

    def count() -> None:
        for c in made:
            CALLBACKS.labels(c.reason, str(c.reached).lower()).inc()
            if c.score is not None:
                exporter.SURVEY_SCORE.labels(DIMENSION).observe(c.score)

    return count


# Counted once per event: the inbox keeps the claim (not idempotent).
HANDLERS: dict[str, Handler] = {CallbackRecorded.TYPE: on_recorded}
