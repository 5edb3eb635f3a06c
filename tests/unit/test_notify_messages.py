"""Unit tests for notify's messages beyond a ticket's own: a held ticket's known-problem
confirmation, incident notices (with or without a ticket), mentions and merges."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.intake.channels.email import careloop_ticket_of
from services.notify.channels.sms import segments
from services.notify.domain import (
    Rendered,
    email_message,
    message_context,
    notice_words,
    recipient_address,
    render,
    sms_text,
)
from services.notify.handlers import notice, periodic_survey
from services.notify.settings import NotifySettings
from shared.events import IncidentNoticeRequested, Learner, NoticeKind, SurveyPeriodicRequested

CREATED = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)
STATUS = "https://status.careloop.example/incidents/INC-0007?lang=zh"
TICKET = UUID("0b8a9c3e-1f7d-4a52-9e61-3c2d4b5a6f70")


def _held(language: str) -> dict[str, Any]:
    """A ticket routing held for an open incident, as the confirmation's claim reads it."""
    values: dict[str, Any] = {
        "number": "CL-000731",
        "name": "李雷" if language == "zh" else "Lei Li",
        "subject": "视频无法播放" if language == "zh" else "Videos do not play",
        "language": language,
        "created_at": CREATED,
        "priority": "high",
        "first_response_due_at": CREATED + timedelta(hours=2),
        "agent_id": None,
        "portal_url": "https://desk.example/t/abc",
        "articles": [],
        "incident_url": STATUS,
    }
    return message_context(values, kind="confirmation", now=CREATED, fallback_minutes=480)


@pytest.mark.parametrize("channel", ["email", "wechat", "weibo", "sms"])
def test_a_held_tickets_confirmation_says_it_is_a_known_problem_in_chinese(channel: str) -> None:
    text = render("confirmation", "zh", _held("zh"), channel=channel).body

    assert "已知晓此问题" in text and "无需重复提交" in text
    assert STATUS in text
    assert "首次回复" not in text and "排队" not in text  # no expected wait


@pytest.mark.parametrize("channel", ["email", "wechat", "weibo", "sms"])
def test_a_held_tickets_confirmation_says_it_is_a_known_problem_in_english(channel: str) -> None:
    text = render("confirmation", "en", _held("en"), channel=channel).body

    assert "known problem" in text and "o need to write again" in text
    assert STATUS in text
    assert "first response" not in text.lower() and "queue" not in text


def test_the_email_confirmation_of_a_held_ticket_names_it() -> None:
    body = render("confirmation", "zh", _held("zh")).body

    assert f"我们已知晓此问题（CL-000731），正在处理，进展请看 {STATUS}。无需重复提交。" in body


# ---- incident notices -------------------------------------------------------------------------


def test_notice_words_drop_the_closing_status_link_line() -> None:
    body = f"PY101 的视频暂时无法播放，技术团队正在修复。\n\n最新进展请看：{STATUS}"

    assert notice_words(body, STATUS) == "PY101 的视频暂时无法播放，技术团队正在修复。"


def test_notice_words_keep_a_body_that_does_not_end_with_the_link() -> None:
    body = f"详情：{STATUS}\n请稍后再试。"

    assert notice_words(body, STATUS) == body


def _notice_context(body: str, *, number: str = "") -> dict[str, Any]:
    return {
        "number": number,
        "name": "李雷",
        "language": "zh",
        "title": "【故障通知】PY101 视频无法播放",
        "body": body,
        "status_url": STATUS,
    }


def test_a_long_incident_notice_by_sms_is_cut_and_keeps_the_status_link() -> None:
    body = "PY101 课程的视频暂时无法播放，技术团队正在修复，预计一小时内恢复。" * 10

    text = sms_text("incident_notice", "zh", _notice_context(body), fits=lambda t: segments(t) <= 3)

    assert segments(text) <= 3
    assert text.startswith("【故障通知】PY101 视频无法播放：PY101")
    assert text.endswith(f"… 进展：{STATUS}")


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
def test_an_incident_notice_says_the_title_the_words_and_the_link(channel: str) -> None:
    context = _notice_context("技术团队正在修复。")

    rendered = render("incident_notice", "zh", context, channel=channel)

    assert "PY101 视频无法播放" in rendered.subject + rendered.body
    assert "技术团队正在修复。" in rendered.body and STATUS in rendered.body


def test_a_ticketless_notice_email_stands_alone() -> None:
    notice_id = uuid4()
    wire = email_message(
        sender="support@careloop.example",
        reply_to="careloop <help@careloop.example>",
        to=recipient_address("li@example.com", server_smtputf8=False),
        rendered=Rendered(subject="【故障通知】PY101", body="技术团队正在修复。\n"),
        delivery_key=f"incident_notice:{notice_id}",
        ticket_id=notice_id,
        number="",
        kind="incident_notice",
    )
    message = message_from_bytes(wire, policy=policy.default)

    assert message["X-Careloop-Ticket"] is None
    assert message["In-Reply-To"] is None and message["References"] is None
    assert message["Reply-To"] == "careloop <help@careloop.example>"
    assert careloop_ticket_of(message["Message-ID"]) is None  # a reply is a new request


def test_a_notice_about_a_ticket_is_in_its_thread() -> None:
    wire = email_message(
        sender="support@careloop.example",
        reply_to="help@careloop.example",
        to=recipient_address("li@example.com", server_smtputf8=False),
        rendered=Rendered(subject="【故障通知】PY101", body="技术团队正在修复。\n"),
        delivery_key=f"incident_notice:{uuid4()}",
        ticket_id=TICKET,
        number="CL-000731",
        kind="incident_notice",
    )
    message = message_from_bytes(wire, policy=policy.default)

    assert message["X-Careloop-Ticket"] == "CL-000731"
    assert careloop_ticket_of(message["In-Reply-To"]) == TICKET


def _requested(learner: Learner, channel: str, ticket_id: UUID | None = None) -> Any:
    notice_id = uuid4()
    return IncidentNoticeRequested(
        ticket_id=ticket_id,
        notice_id=notice_id,
        incident_id=uuid4(),
        kind=NoticeKind.ANNOUNCEMENT,
        learner=learner,
        channel=channel,
        locale="en",
        title="[Known problem] PY101 videos",
        body=f"Videos of PY101 do not play.\n\nFollow the progress at {STATUS}",
        status_url=STATUS,
        requested_at=CREATED,
    )


ALL = frozenset({"email", "sms", "wechat", "weibo"})


def test_a_notice_goes_on_the_channel_incident_named() -> None:
    learner = Learner(name="Lei Li", email="li@example.com", wechat_openid="oWx123")

    n = notice(_requested(learner, "wechat"), available=ALL)

    assert (n.channel, n.address, n.language) == ("wechat", "oWx123", "en")
    assert n.payload["body"] == "Videos of PY101 do not play."
    assert n.ticket_id is None


def test_a_notice_on_a_channel_notify_does_not_answer_on_falls_back_to_email() -> None:
    learner = Learner(name="Lei Li", email="li@example.com", weibo_uid="5012345678")

    n = notice(_requested(learner, "weibo", TICKET), available=ALL - {"weibo"})

    assert (n.channel, n.address, n.ticket_id) == ("email", "li@example.com", TICKET)


def test_a_notice_that_reaches_the_learner_nowhere_is_refused_with_why() -> None:
    learner = Learner(name="Lei Li", weibo_uid="5012345678")

    with pytest.raises(ValueError, match="no contact on any channel notify answers on"):
        notice(_requested(learner, "weibo"), available=frozenset({"email", "sms"}))


# ---- mentions and merges --------------------------------------------------------------------


def test_a_mention_quotes_the_note_as_written_and_links_the_workspace() -> None:
    note = "<b>@ana</b> please check the refund {id}\nsecond line"
    context = {
        "number": "CL-000731",
        "name": "Ana",
        "by": "gus",
        "body": note,
        "workspace_url": "http://desk.example:18082/tickets/CL-000731",
    }

    rendered = render("mention", "en", context)

    assert rendered.subject == "[CL-000731] gus mentioned you on CL-000731"
    assert note in rendered.body  # a text/plain e-mail: nothing to escape
    assert "http://desk.example:18082/tickets/CL-000731" in rendered.body


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
def test_a_merged_message_names_the_ticket_it_continues_under(channel: str) -> None:
    context = {
        "number": "CL-000731",
        "name": "李雷",
        "into_number": "CL-000702",
        "portal_url": "https://desk.example/t/xyz",
    }

    zh = render("merged", "zh", context, channel=channel).body
    en = render("merged", "en", context, channel=channel).body

    assert (
        "您的工单 CL-000731 与 CL-000702 是同一个问题，我们已合并，后续将在 CL-000702 中回复您"
        "：https://desk.example/t/xyz"
    ) in zh
    assert (
        "our request CL-000731 is the same as CL-000702; we merged them and will answer you "
        "there: https://desk.example/t/xyz"
    ) in en


def test_the_workspace_link_follows_desks_public_url_unless_notify_is_given_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARELOOP_NOTIFY_DESK_URL", raising=False)
    monkeypatch.delenv("CARELOOP_DESK_PUBLIC_URL", raising=False)
    monkeypatch.setenv("CARELOOP_PUBLIC_BASE_URL", "https://careloop.example")
    assert NotifySettings().desk_url == "https://careloop.example:18082"

    monkeypatch.setenv("CARELOOP_DESK_PUBLIC_URL", "https://help.example.com")
    assert NotifySettings().desk_url == "https://help.example.com"

    monkeypatch.setenv("CARELOOP_NOTIFY_DESK_URL", "https://desk.internal.example")
    assert NotifySettings().desk_url == "https://desk.internal.example"


# ---- the follow-up programme's periodic survey -------------------------------------------------

SURVEY = "https://survey.careloop.example/s/Zm9vYmFyYmF6cXV4MTIz"


def _periodic(learner: Learner, locale: str) -> SurveyPeriodicRequested:
    return SurveyPeriodicRequested(
        survey_id=uuid4(),
        learner=learner,
        locale=locale,
        period="2026-10+3m",
        survey_url=SURVEY,
        requested_at=CREATED,
    )


@pytest.mark.parametrize(
    ("locale", "channel", "words"),
    [("zh", "email", f"填写问卷： {SURVEY}"), ("en", "sms", f"Answer here: {SURVEY}")],
)
def test_a_periodic_survey_goes_as_a_ticketless_notice_with_its_link(
    locale: str, channel: str, words: str
) -> None:
    learner = Learner(
        name="李雷", email="li@example.com" if channel == "email" else None, phone="+8613800138000"
    )
    asked = _periodic(learner, locale)

    n = periodic_survey(asked, available=ALL)
    # As the sender renders it: the recipient's number beside the payload (none: no ticket).
    rendered = render("incident_notice", locale, {"number": "", **n.payload}, channel=channel)

    assert (n.notice_id, n.ticket_id, n.channel) == (asked.survey_id, None, channel)
    assert words in rendered.body
    assert ("学习回访" if locale == "zh" else "Follow-up") in rendered.subject + rendered.body
    assert "进展" not in rendered.body and "progress" not in rendered.body  # no status page


def test_a_periodic_survey_to_a_learner_notify_cannot_reach_is_refused_with_why() -> None:
    with pytest.raises(ValueError, match=r"periodic survey .* no contact"):
        periodic_survey(_periodic(Learner(name="Lei Li"), "en"), available=ALL)
