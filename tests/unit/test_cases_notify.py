"""The learner's complaint outcome message: finding and remedies in the learner's language, on
every channel's template set."""

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from services.notify.cases import payload
from services.notify.domain import render
from shared.events import CaseConcluded, CaseRemedy

CONCLUDED = CaseConcluded(
    ticket_id=uuid.UUID("0190a3b2-7c1d-7e2f-8a3b-1234567890ab"),
    number="CL-000123",
    case_id=uuid.UUID("0190a3b2-7c1d-7e2f-8a3b-1234567890ac"),
    finding="partly_upheld",
    outcome="王老师的三节课确有迟到。\n我们已提醒任课老师。",
    remedies=(
        CaseRemedy(remedy_id=uuid.uuid4(), type="refund", amount="150.00", currency="CNY"),
        CaseRemedy(remedy_id=uuid.uuid4(), type="extension", days=30, course_id="PY-101"),
    ),
    portal_url="https://help.example.com/t/abc",
    concluded_at=datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
)


def context() -> dict[str, object]:
    return {**payload(CONCLUDED), "number": "CL-000123", "name": "王芳", "subject": "迟到"}


def test_the_chinese_e_mail_states_the_finding_remedies_and_the_agents_words() -> None:
    rendered = render("case_outcome", "zh", context())
    assert rendered.subject == "[CL-000123] 投诉处理结果：投诉部分属实"
    assert "我们为您提供：退款 150.00 CNY；课程延期 30 天 (PY-101)。" in rendered.body
    assert "王老师的三节课确有迟到。\n我们已提醒任课老师。" in rendered.body


def test_the_english_e_mail_states_the_finding_and_remedies() -> None:
    rendered = render("case_outcome", "en", context())
    assert (
        rendered.subject
        == "[CL-000123] The outcome of your complaint: your complaint is partly upheld"
    )
    assert "a refund of 150.00 CNY; 30 more days of access (PY-101)" in rendered.body


@pytest.mark.parametrize("channel", ["wechat", "weibo", "sms"])
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_channel_has_the_outcome_in_both_languages(channel: str, language: str) -> None:
    rendered = render("case_outcome", language, context(), channel=channel)
    assert "CL-000123" in rendered.body and "150.00 CNY" in rendered.body


def test_a_case_without_remedies_says_no_offer() -> None:
    bare = payload(msgspec.structs.replace(CONCLUDED, remedies=()))
    rendered = render("case_outcome", "en", {**bare, "number": "CL-000123", "name": "Ann"})
    assert "We offer" not in rendered.body
