"""Course changes' pure parts: what course operations may announce, what the learner reads
(in their language, reason, impact and remedy, the reply link last), and how notify sends a
change's notice and a decision (with and without a reply link)."""

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import ValidationError

from services.incident.changes.domain import ChangeIn, ChangeWords, change_notice, decision_notice
from services.incident.domain import Wording
from services.notify.domain import render
from services.notify.handlers import change_notice as notify_change_notice
from shared.events import CourseChangeNoticeRequested, Learner

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
REPLY = "https://careloop.example:18088/changes/reply/tok3n?lang=zh"
CHANGE = {
    "course_id": "IELTS-7",
    "kind": "schedule",
    "old": "周六 19:00",
    "new": "周日 19:00",
    "reason": "主讲老师周六参加教研培训",
    "impact": "第 5 至 8 讲改到周日",
    "remedy": "可免费转到周三班",
    "effective_at": "2026-12-05T19:00:00+08:00",
}
WORDS = ChangeWords(
    number="CC-000042",
    course="雅思冲刺班",
    kind="teacher",
    old="张老师",
    new="李老师",
    effective_at=datetime(2026, 12, 5, 19, 0),
    reason=Wording("张老师休产假", "Ms Zhang is on maternity leave"),
    impact=Wording("第 5 讲起由李老师授课", "Mr Li teaches from lesson 5"),
    remedy=Wording("赠送一节一对一辅导", None),
)


def test_a_schedule_change_in_the_future_is_accepted() -> None:
    given = ChangeIn.model_validate(CHANGE).check_at(NOW)
    assert given.kind == "schedule" and given.effective_at.utcoffset() == timedelta(hours=8)


def test_a_schedule_change_in_the_past_is_refused_naming_effective_at() -> None:
    with pytest.raises(ValueError, match="effective_at: a schedule change cannot take effect"):
        ChangeIn.model_validate(CHANGE).check_at(NOW + timedelta(days=30))


def test_a_cancellation_may_be_announced_after_it_took_effect_and_needs_no_new_value() -> None:
    given = {**CHANGE, "kind": "cancellation", "old": None, "new": None}
    assert ChangeIn.model_validate(given).check_at(NOW + timedelta(days=30)).new is None


@pytest.mark.parametrize("kind", ["teacher", "mode"])
def test_a_new_teacher_or_mode_says_what_it_changes_to(kind: str) -> None:
    with pytest.raises(ValueError, match=f"new: a {kind} change says what it changes to"):
        ChangeIn.model_validate({**CHANGE, "kind": kind, "new": None}).check_at(NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({**CHANGE, "kind": "holiday"}, "kind"),
        ({**CHANGE, "course_id": "  "}, "course_id"),
        ({k: v for k, v in CHANGE.items() if k != "reason"}, "reason"),
        ({**CHANGE, "remedy": ""}, "remedy"),
        ({**CHANGE, "effective_at": "2026-12-05T19:00:00"}, "effective_at"),  # no time zone
        ({**CHANGE, "budget": 5}, "budget"),
    ],
)
def test_a_bad_change_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ChangeIn.model_validate(change)
    assert field in str(refused.value)


def test_the_chinese_notice_says_the_change_reason_impact_remedy_and_the_reply_link_last() -> None:
    title, body = change_notice(WORDS, locale="zh", reply_url=REPLY)
    assert title == "【课程变更】雅思冲刺班：更换老师 (CC-000042)"
    assert body.splitlines() == [
        "变更：张老师 → 李老师",
        "生效时间：2026-12-05 19:00",
        "原因：张老师休产假",
        "对您的影响：第 5 讲起由李老师授课",
        "我们的补救：赠送一节一对一辅导",
        "",
        f"有疑问或需要调整，请在此回复：{REPLY}",
    ]


def test_the_english_notice_falls_back_to_the_chinese_words_not_given_in_english() -> None:
    title, body = change_notice(WORDS, locale="en", reply_url=REPLY)
    assert title == "[Course change] 雅思冲刺班: new teacher (CC-000042)"
    assert "Why: Ms Zhang is on maternity leave" in body
    assert "What we offer: 赠送一节一对一辅导" in body
    assert body.endswith(f"Reply here: {REPLY}")


def test_long_words_are_cut_but_the_reply_link_always_goes() -> None:
    long = Wording("很" * 2000)
    words = dataclasses.replace(WORDS, reason=long, impact=long, remedy=long)
    title, body = change_notice(words, locale="zh", reply_url=REPLY)
    assert len(body) <= 4000 and body.endswith(REPLY) and len(title) <= 200


def test_a_decision_notice_names_the_request_and_gives_the_note() -> None:
    note = Wording("已为您转到周三班", "You are in the Wednesday class now")
    assert decision_notice("approved", number="CL-000731", note=note, locale="en") == (
        "[Change request approved] CL-000731",
        "You are in the Wednesday class now",
    )
    title, _ = decision_notice("declined", number="CL-000731", note=note, locale="zh")
    assert title == "【课程调整申请未获批准】工单 CL-000731"


def _notice(reply_url: str | None, body: str) -> CourseChangeNoticeRequested:
    return CourseChangeNoticeRequested(
        notice_id=UUID("0b8a9c3e-1f7d-4a52-9e61-3c2d4b5a6f70"),
        change_id=None if reply_url is None else UUID("1b8a9c3e-1f7d-4a52-9e61-3c2d4b5a6f70"),
        kind="announcement" if reply_url else "decision",
        learner=Learner(name="李雷", email="li@example.com", phone="+8613800138000"),
        channel="email",
        locale="zh",
        title="【课程变更】雅思冲刺班：更换老师 (CC-000042)",
        body=body,
        reply_url=reply_url,
        requested_at=NOW,
    )


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
def test_notify_sends_a_change_with_its_reply_link_once(channel: str) -> None:
    _, body = change_notice(WORDS, locale="zh", reply_url=REPLY)
    sent = notify_change_notice(_notice(REPLY, body), available=frozenset({"email", "sms"}))
    assert sent.payload["body"].endswith("我们的补救：赠送一节一对一辅导")  # the link line goes
    text = render(
        "incident_notice", "zh", {**sent.payload, "number": "CL-000731"}, channel=channel
    ).body
    assert text.count(REPLY) == 1 and "进展" not in text


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
def test_notify_sends_a_decision_without_a_link(channel: str) -> None:
    sent = notify_change_notice(
        _notice(None, "第一行\n已为您转到周三班"), available=frozenset({"email"})
    )
    assert sent.payload["body"] == "第一行\n已为您转到周三班"
    text = render(
        "incident_notice", "zh", {**sent.payload, "number": "CL-000731"}, channel=channel
    ).body
    assert "已为您转到周三班" in text and "http" not in text and "进展" not in text
