"""The published AsyncAPI document is the one the event models generate."""

import json
from pathlib import Path

from shared.asyncapi import document

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_published_asyncapi_document_matches_the_event_models() -> None:
    assert json.loads(PUBLISHED.read_text(encoding="utf-8")) == document(), (
        "regenerate: python -m shared.asyncapi > docs/asyncapi.json"
    )


def test_every_topic_with_events_is_documented() -> None:
    channels = set(document()["channels"])
    assert {
        "careloop.inbound.v1",
        "careloop.intake.v1",
        "careloop.tickets.v1",
        "careloop.routing.v1",
        "careloop.notify.v1",
        "careloop.survey.v1",
    } <= channels
