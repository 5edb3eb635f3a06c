"""The edges' e-mail check gives email-validator's verdict (as pydantic's `EmailStr` reports
it), and `InboundSubmission` with it refuses and accepts exactly what it did with `EmailStr`."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, Field, ValidationError
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from shared.emails import email_address
from shared.events import InboundSubmission


class WithEmailStr(InboundSubmission):
    """The reference: the same model with pydantic's own `EmailStr`."""

    email: EmailStr | None = Field(None, max_length=320)  # type: ignore[assignment]


ATEXT = "abcxyzABCXYZ0189_!#$%&'*+-/=?^`{|}~"
ODD = ' ."@<>\\()[],;:\x00\t\n\u00e9\u4e2d\uff20\u3002\u200b'
CASELESS = ["postmaster", "Info", "ABUSE", "www", "support"]
TLDS = ["com", "COM", "org", "cn", "x", "c0m", "123", "test", "local", "Localhost", "onion"]
TLDS += ["arpa", "invalid", "xn--fiqs8s", "a-b", "b-", "-c", "co.uk", "exam--ple"]

local_part = st.one_of(
    st.text(st.sampled_from(ATEXT + "."), min_size=0, max_size=70),
    st.text(st.sampled_from(ATEXT + "." + ODD), min_size=1, max_size=20),
    st.sampled_from(CASELESS),
)
label = st.one_of(
    st.text(st.sampled_from("abcXYZ019-"), min_size=0, max_size=12),
    st.text(st.sampled_from("ab-"), min_size=60, max_size=66),
    st.text(st.sampled_from("ab-_" + ODD), min_size=1, max_size=8),
    st.sampled_from(["xn--bcher-kva", "ab--cd", "Example", "mail"]),
)
domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=0, max_size=4),
    st.one_of(st.sampled_from(TLDS), label),
)
# Mostly what the fast path decides itself, near each of its edges.
plain_label = st.one_of(
    st.text(st.sampled_from("abcXYZ019"), min_size=1, max_size=66),
    st.text(st.sampled_from("abcXYZ019-"), min_size=1, max_size=12),
)
plain = st.builds(
    "{}@{}.{}".format,
    st.one_of(st.text(st.sampled_from(ATEXT), min_size=1, max_size=66), st.sampled_from(CASELESS)),
    st.lists(plain_label, min_size=1, max_size=3).map(".".join),
    st.sampled_from(TLDS),
)
address = st.one_of(
    plain,
    st.builds("{}@{}".format, local_part, domain),
    st.builds("{}@{}@{}".format, local_part, local_part, domain),
    st.builds("{} <{}@{}>".format, st.sampled_from(["Li", '"Li Lei"', ""]), local_part, domain),
    st.builds(lambda n: "a" * n + "@example.com", st.integers(230, 260)),
    st.builds(lambda n: "a@" + "b" * n + ".com", st.integers(240, 256)),
    st.emails(),
    st.text(max_size=40),
)


def example_each(values: list[str]) -> Callable[[Any], Any]:
    def decorate(test: Any) -> Any:
        for value in values:
            test = example(value=value)(test)
        return test

    return decorate


def outcome(check: Any, value: str) -> tuple[str, str]:
    try:
        return ("accepted", check(value))
    except PydanticCustomError as exc:
        return ("refused", f"{exc.type}: {exc}")


# The edges of what the check decides itself, on both sides of each.
EDGES = [
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a@b." + "c" * 63,
    "a@b." + "c" * 64,
    "a" * 67 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".com",  # 254 characters
    "a" * 68 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".com",
    "a@b.test",
    "a@b.Localhost",
    "a@test",
    "a@b.c0m",
    "a@b.c0",
    "a@xn--bcher-kva.com",
    "a@ab--c.com",
    "a--b@c.com",
    "Postmaster@b.com",
    "postmaster.x@b.com",
    ".a@b.com",
    "a.@b.com",
    "a@-b.com",
    "a@b-.com",
    "a@B.COM",
]


@settings(max_examples=3000, deadline=None)
@given(value=address)
@example_each(EDGES)
def test_the_email_check_gives_email_validators_verdict_and_normal_form(value: str) -> None:
    assert outcome(email_address, value) == outcome(lambda v: validate_email(v)[1], value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Learner.42+lms@Example.COM", "Learner.42+lms@example.com"),
        ("Postmaster@example.com", "postmaster@example.com"),
        ("a@xn--bcher-kva.com", "a@bücher.com"),
        ("Li Lei <li@example.com>", "li@example.com"),
    ],
)
def test_an_address_is_normalised_as_email_validator_does(value: str, expected: str) -> None:
    assert email_address(value) == expected


@pytest.mark.parametrize(
    "value", ["li@example.test", "li@example.local", "li@example", "li@ab--cd.com", "li..x@a.com"]
)
def test_an_address_email_validator_refuses_is_refused(value: str) -> None:
    with pytest.raises(PydanticCustomError, match="value is not a valid email address"):
        email_address(value)


MESSAGE = {
    "source": "lms",
    "external_id": "lms-42",
    "name": "Li Lei",
    "email": "lilei@example.com",
    "subject": "Cannot open lesson 3",
    "description": "The video does not play",
}
text = st.one_of(st.text(max_size=30), st.just(""), st.just("x" * 201))
odd_values = st.one_of(st.none(), st.integers(), st.booleans(), text, st.lists(text, max_size=2))
attachment = st.fixed_dictionaries(
    {
        "name": st.one_of(text, st.just("a.png")),
        "content_type": st.sampled_from(["image/png", "png", ""]),
        "size": st.one_of(st.integers(-1, 10), st.just("5")),
        "url": st.sampled_from(["https://x/a", "ftp://x", ""]),
    }
)
changes = st.dictionaries(
    st.sampled_from(
        [*MESSAGE, "phone", "learner_id", "course_id", "order_id", "language", "unknown"]
    ),
    st.one_of(odd_values, address),
    max_size=4,
)


def model_outcome(model: Any, raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw).model_dump()
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]


@settings(max_examples=1000, deadline=None)
@given(
    changes=changes,
    attachments=st.none() | st.lists(attachment, max_size=11),
    drop=st.lists(st.sampled_from(list(MESSAGE)), max_size=2),
)
def test_the_inbound_model_accepts_and_refuses_as_with_email_str(
    changes: dict[str, Any], attachments: list[dict[str, Any]] | None, drop: list[str]
) -> None:
    message: dict[str, Any] = {**MESSAGE, **changes}
    if attachments is not None:
        message["attachments"] = attachments
    for name in drop:
        message.pop(name, None)
    raw = json.dumps(message).encode()

    assert model_outcome(InboundSubmission, raw) == model_outcome(WithEmailStr, raw)
