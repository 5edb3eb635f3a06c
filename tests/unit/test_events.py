"""Unit tests for shared.events: public input validation and the event envelope."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest
from pydantic import ValidationError
from uuid6 import uuid7

from shared import topics
from shared.events import (
    Channel,
    InboundSubmission,
    Learner,
    Priority,
    Submission,
    TicketAssigned,
    TicketCreated,
    UnknownEventType,
    decode,
    new_event,
    to_builtins,
)

CREATED_AT = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
TICKET_ID = UUID("0190a3b2-7c1d-7e2f-8a3b-1234567890ab")


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Alice Smith",
        "email": "alice@example.com",
        "subject": "Video will not play",
        "description": "The lesson video stays black.",
    }
    fields.update(overrides)
    return fields


def _inbound_fields(**overrides: Any) -> dict[str, Any]:
    return _fields(**{"source": "lms", "external_id": "lms-1", **overrides})


def _error_fields(error: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(e["loc"][0]) for e in error.value.errors()}


def _created() -> TicketCreated:
    return TicketCreated(
        ticket_id=TICKET_ID,
        number="CL-000123",
        channel=Channel.WEB,
        learner=Learner(name="Alice Smith", email="alice@example.com"),
        subject="Video will not play",
        description="The lesson video stays black.",
        language="en",
        created_at=CREATED_AT,
    )


def _assigned() -> TicketAssigned:
    return TicketAssigned(
        ticket_id=TICKET_ID,
        agent_id="wang",
        team="tech_support",
        priority=Priority.HIGH,
        assigned_at=CREATED_AT,
    )


# ---- Submission ---------------------------------------------------------------------------


def test_submission_accepts_the_minimal_fields() -> None:
    submission = Submission(**_fields())

    assert submission.email == "alice@example.com"
    assert submission.external_id is None


def test_submission_without_email_is_rejected() -> None:
    fields = _fields()
    del fields["email"]

    with pytest.raises(ValidationError) as error:
        Submission(**fields)

    assert _error_fields(error) == {"email"}


def test_submission_with_a_malformed_email_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(email="alice.example.com"))

    assert _error_fields(error) == {"email"}


def test_submission_with_an_empty_subject_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(subject=""))

    assert _error_fields(error) == {"subject"}


def test_submission_with_a_whitespace_only_subject_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(subject="   "))

    assert _error_fields(error) == {"subject"}


def test_submission_accepts_a_description_of_exactly_20000_characters() -> None:
    submission = Submission(**_fields(description="x" * 20_000))

    assert len(submission.description) == 20_000


def test_submission_with_a_description_over_20000_characters_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(description="x" * 20_001))

    assert _error_fields(error) == {"description"}


@pytest.mark.parametrize("phone", ["+86 138-1234-5678", "010 6552-1234", "13812345678"])
def test_submission_accepts_a_well_formed_phone(phone: str) -> None:
    assert Submission(**_fields(phone=phone)).phone == phone


@pytest.mark.parametrize("phone", ["call me", "12345", "138.1234.5678", "++8613812345678"])
def test_submission_with_a_malformed_phone_is_rejected(phone: str) -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(phone=phone))

    assert _error_fields(error) == {"phone"}


def test_submission_with_an_unsupported_language_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(language="fr"))

    assert _error_fields(error) == {"language"}


def test_submission_with_an_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        Submission(**_fields(priority="urgent"))

    assert _error_fields(error) == {"priority"}


def test_submission_strips_surrounding_whitespace() -> None:
    submission = Submission(**_fields(name="  Alice Smith  "))

    assert submission.name == "Alice Smith"


# ---- InboundSubmission --------------------------------------------------------------------


def test_inbound_submission_accepts_a_source_and_external_id() -> None:
    inbound = InboundSubmission(**_inbound_fields())

    assert (inbound.source, inbound.external_id) == ("lms", "lms-1")


def test_inbound_submission_without_external_id_is_rejected() -> None:
    fields = _inbound_fields()
    del fields["external_id"]

    with pytest.raises(ValidationError) as error:
        InboundSubmission(**fields)

    assert _error_fields(error) == {"external_id"}


def test_inbound_submission_with_an_empty_external_id_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        InboundSubmission(**_inbound_fields(external_id=""))

    assert _error_fields(error) == {"external_id"}


def test_inbound_submission_without_source_is_rejected() -> None:
    fields = _inbound_fields()
    del fields["source"]

    with pytest.raises(ValidationError) as error:
        InboundSubmission(**fields)

    assert _error_fields(error) == {"source"}


@pytest.mark.parametrize("source", ["LMS", "1lms", "l", "lms service", "lms.v2"])
def test_inbound_submission_with_a_malformed_source_is_rejected(source: str) -> None:
    with pytest.raises(ValidationError) as error:
        InboundSubmission(**_inbound_fields(source=source))

    assert _error_fields(error) == {"source"}


# ---- new_event / decode -------------------------------------------------------------------


def test_new_event_fills_the_head_from_the_payload() -> None:
    event = new_event(_created(), producer="desk")

    assert (event.type, event.version, event.producer, event.key) == (
        "ticket.created",
        1,
        "desk",
        str(TICKET_ID),
    )
    assert event.topic == topics.TICKETS


def test_new_event_without_cause_starts_a_new_correlation() -> None:
    event = new_event(_created(), producer="desk")

    assert event.correlation_id == event.event_id
    assert event.causation_id is None


def test_new_event_gives_each_event_its_own_id() -> None:
    first = new_event(_created(), producer="desk")
    second = new_event(_created(), producer="desk")

    assert first.event_id != second.event_id


def test_new_event_inherits_correlation_and_causation_from_its_cause() -> None:
    cause = new_event(_created(), producer="desk")

    effect = new_event(_assigned(), producer="routing", cause=cause)

    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.event_id


def test_new_event_keeps_the_correlation_along_a_chain_of_causes() -> None:
    root = new_event(_created(), producer="desk")
    middle = new_event(_assigned(), producer="routing", cause=root)

    last = new_event(_assigned(), producer="routing", cause=middle)

    assert last.correlation_id == root.event_id
    assert last.causation_id == middle.event_id


def test_new_event_prefers_an_explicit_correlation_id_over_the_cause() -> None:
    cause = new_event(_created(), producer="desk")
    correlation_id = uuid7()

    effect = new_event(
        _assigned(),
        producer="routing",
        cause=cause,
        correlation_id=correlation_id,
    )

    assert effect.correlation_id == correlation_id
    assert effect.causation_id == cause.event_id


def test_decode_round_trips_an_event_to_its_typed_payload() -> None:
    event = new_event(_created(), producer="desk")

    decoded = decode(event.to_json())

    assert isinstance(decoded.data, TicketCreated)
    assert decoded.data == event.data


def test_decode_round_trips_the_envelope_head() -> None:
    cause = new_event(_created(), producer="desk")
    event = new_event(_assigned(), producer="routing", cause=cause)

    decoded = decode(event.to_json())

    assert to_builtins(decoded) == to_builtins(event)
    assert decoded.topic == topics.ROUTING


def test_decode_accepts_text_as_well_as_bytes() -> None:
    event = new_event(_created(), producer="desk")

    decoded = decode(event.to_json().decode())

    assert decoded.event_id == event.event_id


def test_decode_raises_unknown_event_type_for_an_unknown_type() -> None:
    wire = json.loads(new_event(_created(), producer="desk").to_json())
    wire["type"] = "ticket.teleported"

    with pytest.raises(UnknownEventType, match=r"ticket\.teleported v1"):
        decode(json.dumps(wire))


def test_decode_raises_unknown_event_type_for_an_unknown_version() -> None:
    wire = json.loads(new_event(_created(), producer="desk").to_json())
    wire["version"] = 2

    with pytest.raises(UnknownEventType, match=r"ticket\.created v2"):
        decode(json.dumps(wire))


def test_decode_raises_validation_error_for_a_payload_that_does_not_fit_its_type() -> None:
    wire = json.loads(new_event(_created(), producer="desk").to_json())
    del wire["data"]["number"]

    with pytest.raises(msgspec.ValidationError, match=r"`number` - at `\$\.data`"):
        decode(json.dumps(wire))


def test_decode_names_the_field_out_of_bounds() -> None:
    wire = json.loads(new_event(_created(), producer="desk").to_json())
    wire["data"]["learner"]["email"] = ""

    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.learner\.email"):
        decode(json.dumps(wire))


def test_decode_raises_validation_error_for_a_message_without_a_head() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"data": {}}')


def test_decode_raises_decode_error_for_bytes_that_are_not_json() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(b"\xff not json")
