"""careloop.inbound.v1 messages are validated by the same models: what desk could not store is
refused with the field and the reason, which the consumer puts on the dead letter."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import InboundSubmission

MESSAGE = {
    "source": "lms",
    "external_id": "lms-42",
    "name": "Li Lei",
    "email": "lilei@example.com",
    "subject": "Cannot open lesson 3",
    "description": "The video does not play",
}


def _problems(raw: bytes) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        InboundSubmission.model_validate_json(raw)
    return {".".join(str(p) for p in e["loc"]) or "message": e["msg"] for e in info.value.errors()}


def _raw(**overrides: Any) -> bytes:
    return json.dumps({**MESSAGE, **overrides}).encode()


def test_a_valid_message_passes() -> None:
    assert InboundSubmission.model_validate_json(_raw()).external_id == "lms-42"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("description", "a\x00b", "NUL character"),
        ("external_id", "lms\x0042", "NUL character"),
        ("name", "Li\x1bLei", "control character (U+001B)"),
        ("subject", "one\ntwo", "line break"),
        ("course_id", "PY\x7f", "control character (U+007F)"),
    ],
)
def test_a_value_desk_could_not_store_is_refused_naming_the_field(
    field: str, value: str, reason: str
) -> None:
    assert reason in _problems(_raw(**{field: value}))[field]


def test_a_lone_surrogate_escape_is_refused() -> None:
    raw = _raw(subject="x").replace(b'"x"', b'"\\ud800"')
    assert "message" in _problems(raw)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    raw = _raw(name="x").replace(b'"x"', b'"\xff"')
    assert "message" in _problems(raw)


def test_an_oversize_description_is_refused() -> None:
    assert "description" in _problems(_raw(description="x" * 20_001))


def test_an_attachment_size_given_as_a_string_is_refused() -> None:
    attachment = {"name": "a.png", "content_type": "image/png", "size": "5", "url": "https://x/a"}
    assert "attachments.0.size" in _problems(_raw(attachments=[attachment]))
