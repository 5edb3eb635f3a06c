"""incident's pure decisions: who a notice goes to and how, what the response group's robots
are sent (WeCom and DingTalk formats, DingTalk's signature), and what the API refuses."""

import base64
import hashlib
import hmac
import urllib.parse
from typing import Any

import pytest
from pydantic import ValidationError

from services.incident.domain import (
    CompensationIn,
    Conflict,
    CriteriaIn,
    Forbidden,
    IncidentIn,
    UpdateIn,
    Wording,
    check_approver,
    criteria_from_alert,
    dingtalk_signed,
    extension_course,
    learner_key,
    notice_channel,
    notice_text,
    page_text,
    robot_refusal,
    webhook_payload,
)
from shared.events import Category, Channel


@pytest.mark.parametrize(
    ("learner", "key"),
    [
        ({"learner_id": "L-1", "email": "a@example.com"}, "id:l-1"),
        ({"email": "Li.Lei@Example.com", "phone": "+86 138"}, "email:li.lei@example.com"),
        ({"wechat_openid": "oABC", "phone": "+86 138"}, "wechat:oabc"),
        ({"phone": "+8613800000000"}, "phone:+8613800000000"),
        ({"name": "anonymous"}, None),
    ],
)
def test_a_learner_is_known_by_their_id_else_their_first_contact(
    learner: dict[str, Any], key: str | None
) -> None:
    assert learner_key(learner) == key


@pytest.mark.parametrize(
    ("learner", "preferred", "channel"),
    [
        ({"email": "a@example.com", "wechat_openid": "o1"}, "wechat", "wechat"),
        ({"email": "a@example.com"}, "wechat", "email"),  # preferred, but no openid
        ({"email": "a@example.com", "wechat_openid": "o1"}, "hotline", "email"),
        ({"wechat_openid": "o1", "phone": "138"}, None, "wechat"),
        ({"phone": "138"}, "app", "sms"),
        ({"name": "x"}, None, None),
    ],
)
def test_a_notice_goes_on_the_preferred_channel_the_learner_can_be_reached_on(
    learner: dict[str, Any], preferred: str | None, channel: str | None
) -> None:
    assert notice_channel(learner, preferred) == channel


def test_a_notice_is_in_the_learners_language_and_points_to_the_status_page() -> None:
    words = {
        "title": Wording("直播故障", "Live classes down"),
        "message": Wording("正在抢修", None),
        "status_url": "https://status.example.com/status/INC-0001?lang=en",
    }
    title, body = notice_text(kind="announcement", locale="en", **words)  # type: ignore[arg-type]
    assert title == "[Service notice] Live classes down"
    assert body.startswith("正在抢修")  # no English given: the Chinese
    assert body.endswith(
        "Follow the progress at https://status.example.com/status/INC-0001?lang=en"
    )
    title, _ = notice_text(kind="resolution", locale="zh", **words)  # type: ignore[arg-type]
    assert title == "【已恢复】直播故障"


def page() -> tuple[str, str]:
    return page_text(
        what="已启动 opened",
        number="INC-0007",
        title="直播黑屏",
        severity="sev1",
        status="investigating",
        message="by incident",
        url="https://status.example.com/status/INC-0007",
    )


def test_a_wecom_robot_gets_markdown_content_within_its_byte_limit() -> None:
    subject, body = page()
    payload = webhook_payload("wecom", subject=subject, body=body * 200, urgent=True)
    assert payload["msgtype"] == "markdown"
    content = payload["markdown"]["content"]
    assert len(content.encode()) <= 4096 and content.startswith("### INC-0007 直播黑屏")


def test_a_dingtalk_robot_gets_a_title_and_text_and_a_p1_notifies_everyone() -> None:
    subject, body = page()
    payload = webhook_payload("dingtalk", subject=subject, body=body, urgent=True)
    assert payload["markdown"] == {"title": subject, "text": body}
    assert payload["at"] == {"isAtAll": True}
    assert subject == "[INC-0007] P1 严重 · 已启动 opened: 直播黑屏"


def test_a_dingtalk_url_is_signed_as_dingtalk_documents() -> None:
    secret = "SEC0123456789abcdef"
    url = dingtalk_signed(
        "https://oapi.dingtalk.com/robot/send?access_token=t", secret, timestamp_ms=1700000000000
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"1700000000000\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["timestamp"] == ["1700000000000"] and query["sign"] == [expected]
    assert query["access_token"] == ["t"]


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ({"errcode": 0, "errmsg": "ok"}, None),
        (
            {"errcode": 93000, "errmsg": "invalid webhook url"},
            "wecom robot refused: 93000 invalid webhook url",
        ),
        ({}, "wecom robot refused: None None"),
    ],
)
def test_a_robot_took_the_message_only_with_errcode_0(
    answer: dict[str, Any], refused: str | None
) -> None:
    assert robot_refusal("wecom", answer) == refused


def test_an_alert_on_a_course_makes_criteria_of_that_course_and_its_words() -> None:
    criteria = criteria_from_alert("course", "PY101", ["黑屏", "直播", "进不去", "卡顿"])
    assert criteria.courses == ("PY101",) and criteria.keywords == ("黑屏", "直播", "进不去")
    assert criteria_from_alert("channel", "app", []).channel == Channel.APP
    assert criteria_from_alert("category", "technical", []).category == Category.TECHNICAL


@pytest.mark.parametrize(
    ("model", "body", "reason"),
    [
        (CriteriaIn, {}, "at least one of category"),
        (CriteriaIn, {"keywords": ["a" * 51]}, "at most 50"),
        (IncidentIn, {"title": "x"}, "give a title and criteria, or the alert_id"),
        (IncidentIn, {"alert_id": "-" * 36}, "valid UUID"),
        (UpdateIn, {"public": False}, "give a status, severity"),
        (UpdateIn, {"status": "resolved"}, "'investigating', 'identified' or 'monitoring'"),
        (CompensationIn, {"kind": "extension", "days": 0, "reason": "r"}, "greater than or equal"),
        (CompensationIn, {"kind": "coupon", "reason": "r"}, "a coupon gives amount"),
        (
            CompensationIn,
            {"kind": "coupon", "amount": "5", "days": 3, "reason": "r"},
            "only amount",
        ),
        (
            CompensationIn,
            {"kind": "points", "points": 5, "course_id": "C", "reason": "r"},
            "course_id",
        ),
    ],
)
def test_the_api_refuses_bad_input_naming_the_problem(
    model: type[Any], body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason.replace("(", r"\(")):
        model.model_validate(body)


def test_the_requester_cannot_approve_their_own_batch_nor_anyone_twice() -> None:
    with pytest.raises(Forbidden, match="requester cannot approve"):
        check_approver("sue", "sue", None)
    with pytest.raises(Conflict, match="approved by ada already"):
        check_approver("sue", "ada", "ada")
    check_approver("sue", "ada", None)


def test_an_extension_extends_the_incidents_only_course_unless_told() -> None:
    assert extension_course(None, ("PY101",)) == "PY101"
    assert extension_course("JAVA2", ("PY101", "GO1")) == "JAVA2"
    with pytest.raises(Conflict, match="no single course"):
        extension_course(None, ("PY101", "GO1"))
