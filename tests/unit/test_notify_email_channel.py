"""Unit tests for services.notify.channels.email.classify: what each way of failing means."""

import aiosmtplib
import pytest

from services.notify.channels.email import classify
from services.notify.domain import Undeliverable


def test_an_undeliverable_address_fails_for_good_with_its_reason() -> None:
    failure = classify(Undeliverable("needs SMTPUTF8"))

    assert (failure.permanent, failure.reason) == (True, "needs SMTPUTF8")


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPDataError(500, "Line too long"),
        aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.c"),
        aiosmtplib.SMTPSenderRefused(553, "sender refused", "s@b.c"),
        aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.c")]
        ),
    ],
)
def test_a_5xx_answer_to_the_message_fails_it_for_good(exc: Exception) -> None:
    assert classify(exc).permanent


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPDataError(451, "try later"),
        aiosmtplib.SMTPRecipientRefused(450, "mailbox busy", "a@b.c"),
    ],
)
def test_a_4xx_answer_is_retried_on_the_same_connection(exc: Exception) -> None:
    failure = classify(exc)

    assert not failure.permanent and not failure.reconnect


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPServerDisconnected("gone"),
        aiosmtplib.SMTPConnectError("refused"),
        aiosmtplib.SMTPReadTimeoutError("slow"),
        ConnectionResetError(),
        aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
        aiosmtplib.SMTPHeloError(554, "go away"),
    ],
)
def test_a_lost_or_refused_session_is_retried_on_a_new_connection(exc: Exception) -> None:
    failure = classify(exc)

    assert not failure.permanent and failure.reconnect


@pytest.mark.parametrize(
    "exc",
    [
        UnicodeEncodeError("ascii", "用户@例子.中国", 0, 2, "ordinal not in range(128)"),
        ValueError("address cannot be sent"),
        aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"),
    ],
)
def test_a_value_that_cannot_go_on_the_wire_fails_for_good(exc: Exception) -> None:
    assert classify(exc).permanent


def test_an_unexpected_error_is_retried_on_a_new_connection_not_raised() -> None:
    failure = classify(RuntimeError("surprise"))

    assert not failure.permanent and failure.reconnect
    assert "surprise" in failure.reason
