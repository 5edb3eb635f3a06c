"""Unit tests for services.intake.domain: ticket ids, language detection, normalisation."""

from datetime import UTC, datetime, timedelta
from typing import Any

from services.intake.domain import (
    DERIVED,
    content_digest,
    derived_ticket_id,
    detect_language,
    mailbox_of,
    normalise,
    sender_key,
    ticket_id_for,
    window_of,
)
from shared.events import Channel, InboundSubmission, Submission

RECEIVED_AT = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)


def _submission(**overrides: Any) -> Submission:
    fields: dict[str, Any] = {
        "name": "Alice Smith",
        "email": "alice@example.com",
        "subject": "Video will not play",
        "description": "The lesson video stays black.",
    }
    fields.update(overrides)
    return Submission(**fields)


def _inbound(**overrides: Any) -> InboundSubmission:
    fields: dict[str, Any] = {
        "name": "Alice Smith",
        "email": "alice@example.com",
        "subject": "Refund not received",
        "description": "I asked for a refund two weeks ago.",
        "source": "payments",
        "external_id": "pay-42",
    }
    fields.update(overrides)
    return InboundSubmission(**fields)


# ---- ticket_id_for ------------------------------------------------------------------------


def test_ticket_id_is_the_same_for_the_same_channel_source_and_external_id() -> None:
    first = ticket_id_for(channel=Channel.WEB, source="lms", external_id="abc-1")
    second = ticket_id_for(channel=Channel.WEB, source="lms", external_id="abc-1")

    assert first == second


def test_ticket_id_differs_for_a_different_external_id() -> None:
    first = ticket_id_for(channel=Channel.WEB, source="lms", external_id="abc-1")
    second = ticket_id_for(channel=Channel.WEB, source="lms", external_id="abc-2")

    assert first != second


def test_ticket_id_differs_for_a_different_channel() -> None:
    web = ticket_id_for(channel=Channel.WEB, source=None, external_id="abc-1")
    app = ticket_id_for(channel=Channel.APP, source=None, external_id="abc-1")

    assert web != app


def test_ticket_id_differs_for_a_different_source() -> None:
    lms = ticket_id_for(channel=Channel.SERVICE, source="lms", external_id="abc-1")
    payments = ticket_id_for(channel=Channel.SERVICE, source="payments", external_id="abc-1")

    assert lms != payments


def test_ticket_id_for_a_known_external_id_is_a_name_based_uuid() -> None:
    ticket_id = ticket_id_for(channel=Channel.WEB, source=None, external_id="abc-1")

    assert ticket_id.version == 5


def test_ticket_id_without_external_id_is_a_fresh_uuid7_each_call() -> None:
    first = ticket_id_for(channel=Channel.WEB, source=None, external_id=None)
    second = ticket_id_for(channel=Channel.WEB, source=None, external_id=None)

    assert first.version == 7
    assert second.version == 7
    assert first != second


# ---- detect_language ----------------------------------------------------------------------


def test_detect_language_says_zh_for_chinese_text() -> None:
    assert detect_language("视频无法播放") == "zh"


def test_detect_language_says_zh_when_chinese_is_mixed_with_english() -> None:
    assert detect_language("App 一直闪退 after update") == "zh"


def test_detect_language_says_en_for_english_text() -> None:
    assert detect_language("The video will not play") == "en"


def test_detect_language_says_en_for_text_without_letters() -> None:
    assert detect_language("12345 !?") == "en"


def test_detect_language_says_en_for_non_ascii_text_without_chinese() -> None:
    assert detect_language("Le vidéo ne marche pas — déçu") == "en"


def test_detect_language_says_zh_when_any_of_the_texts_is_chinese() -> None:
    assert detect_language("Video", "视频无法播放") == "zh"
    assert detect_language("视频", "The video will not play") == "zh"


# ---- normalise ----------------------------------------------------------------------------


def test_normalise_lower_cases_the_email() -> None:
    ticket = normalise(
        _submission(email="Alice.Smith@Example.COM"), channel=Channel.WEB, received_at=RECEIVED_AT
    )

    assert ticket.learner.email == "alice.smith@example.com"


def test_normalise_keeps_only_digits_and_a_leading_plus_in_the_phone() -> None:
    ticket = normalise(
        _submission(phone="+86 (138) 1234-5678"), channel=Channel.WEB, received_at=RECEIVED_AT
    )

    assert ticket.learner.phone == "+8613812345678"


def test_normalise_does_not_invent_a_plus_for_a_local_phone() -> None:
    ticket = normalise(
        _submission(phone="010 6552-1234"), channel=Channel.WEB, received_at=RECEIVED_AT
    )

    assert ticket.learner.phone == "01065521234"


def test_normalise_leaves_a_missing_phone_missing() -> None:
    ticket = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT)

    assert ticket.learner.phone is None


def test_normalise_collapses_runs_of_spaces_in_the_name() -> None:
    ticket = normalise(
        _submission(name="Alice    Smith"), channel=Channel.WEB, received_at=RECEIVED_AT
    )

    assert ticket.learner.name == "Alice Smith"


def test_normalise_collapses_runs_of_spaces_in_the_subject() -> None:
    ticket = normalise(
        _submission(subject="Video   will    not  play"),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
    )

    assert ticket.subject == "Video will not play"


def test_normalise_keeps_the_description_as_written() -> None:
    description = "Line one.\n\n    Indented   line two."
    ticket = normalise(
        _submission(description=description), channel=Channel.WEB, received_at=RECEIVED_AT
    )

    assert ticket.description == description


def test_normalise_detects_chinese_from_the_description_when_no_language_is_given() -> None:
    ticket = normalise(
        _submission(subject="Help", description="视频一直黑屏"),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
    )

    assert ticket.language == "zh"


def test_normalise_detects_english_when_no_language_is_given() -> None:
    ticket = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT)

    assert ticket.language == "en"


def test_normalise_keeps_a_given_language_over_the_detected_one() -> None:
    ticket = normalise(
        _submission(description="视频一直黑屏", language="en"),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
    )

    assert ticket.language == "en"


def test_normalise_uses_the_idempotency_key_when_the_submission_has_no_external_id() -> None:
    ticket = normalise(
        _submission(), channel=Channel.WEB, received_at=RECEIVED_AT, idempotency_key="key-1"
    )

    assert ticket.external_id == "key-1"
    assert ticket.ticket_id == ticket_id_for(channel=Channel.WEB, source=None, external_id="key-1")


def test_normalise_prefers_the_submissions_external_id_over_the_idempotency_key() -> None:
    ticket = normalise(
        _submission(external_id="form-7"),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
        idempotency_key="key-1",
    )

    assert ticket.external_id == "form-7"


def test_normalise_gives_a_retried_submission_the_same_ticket_id() -> None:
    first = normalise(
        _submission(), channel=Channel.WEB, received_at=RECEIVED_AT, idempotency_key="key-1"
    )
    retry = normalise(
        _submission(), channel=Channel.WEB, received_at=RECEIVED_AT, idempotency_key="key-1"
    )

    assert first.ticket_id == retry.ticket_id


def test_normalise_gives_submissions_without_any_key_different_ticket_ids() -> None:
    first = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT)
    second = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT)

    assert first.external_id is None
    assert first.ticket_id != second.ticket_id


def test_normalise_has_no_source_for_a_public_submission() -> None:
    ticket = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT)

    assert ticket.source is None


def test_normalise_carries_the_source_of_an_inbound_submission() -> None:
    ticket = normalise(_inbound(), channel=Channel.SERVICE, received_at=RECEIVED_AT)

    assert ticket.source == "payments"
    assert ticket.external_id == "pay-42"


def test_normalise_names_an_inbound_ticket_by_its_source_and_external_id() -> None:
    ticket = normalise(_inbound(), channel=Channel.SERVICE, received_at=RECEIVED_AT)

    assert ticket.ticket_id == ticket_id_for(
        channel=Channel.SERVICE, source="payments", external_id="pay-42"
    )


def test_an_inbound_ticket_is_named_by_its_source_and_key_whatever_channel_it_relayed() -> None:
    relayed = normalise(_inbound(), channel=Channel.APP, received_at=RECEIVED_AT)
    plain = normalise(_inbound(), channel=Channel.SERVICE, received_at=RECEIVED_AT)

    assert relayed.channel is Channel.APP
    assert relayed.ticket_id == plain.ticket_id


def test_normalise_stamps_the_channel_and_the_receive_time() -> None:
    ticket = normalise(_submission(), channel=Channel.HOTLINE, received_at=RECEIVED_AT)

    assert ticket.channel is Channel.HOTLINE
    assert ticket.submitted_at == RECEIVED_AT


def test_normalise_carries_course_order_and_learner_ids() -> None:
    ticket = normalise(
        _submission(course_id="course-9", order_id="order-3", learner_id="learner-5"),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
    )

    assert (ticket.course_id, ticket.order_id, ticket.learner.learner_id) == (
        "course-9",
        "order-3",
        "learner-5",
    )


# ---- derived keys -------------------------------------------------------------------------


def test_content_digest_is_the_same_for_a_retry_with_other_case_in_the_email() -> None:
    first = content_digest(_submission(email="Alice@Example.com"))
    retry = content_digest(_submission(email="alice@example.com"))

    assert first == retry


def test_content_digest_ignores_runs_of_spaces_in_the_subject() -> None:
    first = content_digest(_submission(subject="Video  will not play"))
    retry = content_digest(_submission(subject="Video will not play"))

    assert first == retry


def test_content_digest_differs_for_another_description() -> None:
    first = content_digest(_submission(description="The video stays black."))
    other = content_digest(_submission(description="The audio is missing."))

    assert first != other


def test_content_digest_differs_for_another_learner() -> None:
    first = content_digest(_submission(email="alice@example.com"))
    other = content_digest(_submission(email="bob@example.com"))

    assert first != other


def test_content_digest_keeps_subject_and_description_apart() -> None:
    first = content_digest(_submission(subject="ab", description="c"))
    other = content_digest(_submission(subject="a", description="bc"))

    assert first != other


def test_window_of_is_the_same_within_a_window_and_changes_at_its_edge() -> None:
    start = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)

    assert window_of(start, seconds=600) == window_of(start + timedelta(seconds=599), seconds=600)
    assert (
        window_of(start + timedelta(seconds=600), seconds=600) == window_of(start, seconds=600) + 1
    )


def test_normalise_names_a_keyless_submission_by_its_content_and_window() -> None:
    submission = _submission()
    first = normalise(submission, channel=Channel.WEB, received_at=RECEIVED_AT, derived_window=7)
    retry = normalise(submission, channel=Channel.WEB, received_at=RECEIVED_AT, derived_window=7)

    assert first.ticket_id == retry.ticket_id
    assert first.ticket_id == derived_ticket_id(
        channel=Channel.WEB, digest=content_digest(submission), window=7
    )


def test_normalise_gives_the_same_content_in_another_window_another_ticket() -> None:
    first = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT, derived_window=7)
    later = normalise(_submission(), channel=Channel.WEB, received_at=RECEIVED_AT, derived_window=8)

    assert first.ticket_id != later.ticket_id


def test_normalise_keeps_no_external_id_for_a_derived_key() -> None:
    ticket = normalise(
        _submission(), channel=Channel.WEB, received_at=RECEIVED_AT, derived_window=7
    )

    assert ticket.external_id is None


def test_normalise_prefers_the_idempotency_key_over_a_derived_key() -> None:
    ticket = normalise(
        _submission(),
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
        idempotency_key="key-1",
        derived_window=7,
    )

    assert ticket.ticket_id == ticket_id_for(channel=Channel.WEB, source=None, external_id="key-1")


def test_a_derived_key_never_names_the_ticket_of_a_key_a_sender_chose() -> None:
    digest = content_digest(_submission())
    derived = derived_ticket_id(channel=Channel.WEB, digest=digest, window=7)
    chosen = ticket_id_for(channel=Channel.WEB, source=None, external_id=f"{DERIVED}:{digest}:7")

    assert derived != chosen


def test_an_empty_external_id_counts_as_no_key() -> None:
    assert sender_key(_submission(external_id=""), None) is None


# ---- mailbox_of ---------------------------------------------------------------------------


def test_mailbox_of_counts_sub_addresses_as_their_inbox() -> None:
    assert mailbox_of("Victim+1@Example.com") == mailbox_of("victim+2@example.com")
    assert mailbox_of("victim+2@example.com") == "victim@example.com"


def test_mailbox_of_keeps_other_inboxes_apart() -> None:
    assert mailbox_of("alice@example.com") != mailbox_of("alice@example.org")


def test_mailbox_of_keeps_a_local_part_that_is_only_a_tag() -> None:
    assert mailbox_of("+tag@example.com") == "+tag@example.com"
