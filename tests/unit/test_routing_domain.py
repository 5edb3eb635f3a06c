"""Unit tests for services.routing.domain: triage, SLA due times and agent candidates."""

from datetime import UTC, datetime, timedelta

import pytest

import services.routing.domain as routing
from services.routing.domain import AgentSkills, Triage, candidates, due_times, priority_of
from shared.agents import Role
from shared.events import Category, Priority


def triage(subject: str, description: str) -> Triage:
    """One ticket through the batch triage."""
    [result] = routing.triage([(subject, description)])
    return result


# ---- triage: categories and priorities ----------------------------------------------------


def test_triage_files_a_stolen_chinese_account_as_urgent_account_security() -> None:
    result = triage("账号被盗", "我的账号被盗了，还有异地登录提醒")

    assert (result.category, result.priority, result.team) == (
        Category.ACCOUNT_SECURITY,
        Priority.URGENT,
        "tech_support",
    )


def test_triage_files_a_hacked_english_account_as_urgent_account_security() -> None:
    result = triage("My account was hacked", "Someone changed my password last night.")

    assert (result.category, result.priority) == (Category.ACCOUNT_SECURITY, Priority.URGENT)


def test_triage_files_a_chinese_complaint_as_high_for_the_complaints_team() -> None:
    result = triage("投诉客服", "客服态度差，我要投诉")

    assert (result.category, result.priority, result.team) == (
        Category.COMPLAINT,
        Priority.HIGH,
        "complaints",
    )


def test_triage_files_an_english_complaint_as_high() -> None:
    result = triage("Complaint", "Your agent was rude and this is unacceptable.")

    assert (result.category, result.priority) == (Category.COMPLAINT, Priority.HIGH)


def test_triage_makes_a_chinese_playback_problem_before_tomorrows_class_high() -> None:
    result = triage("视频打不开", "明天要上课，视频播放一直黑屏")

    assert (result.category, result.priority) == (Category.TECHNICAL, Priority.HIGH)


def test_triage_makes_an_english_playback_problem_before_tomorrows_class_high() -> None:
    result = triage("Video will not play", "Playback error every time; my class is tomorrow.")

    assert (result.category, result.priority) == (Category.TECHNICAL, Priority.HIGH)


def test_triage_leaves_a_playback_problem_without_a_deadline_at_medium() -> None:
    result = triage("Video will not play", "Playback error every time.")

    assert (result.category, result.priority) == (Category.TECHNICAL, Priority.MEDIUM)


def test_triage_files_a_refund_request_with_finance() -> None:
    result = triage("申请退款", "课程不想上了，请帮我退款")

    assert (result.category, result.team) == (Category.PAYMENT_REFUND, "finance")


def test_triage_files_a_chinese_suggestion_as_low() -> None:
    result = triage("建议", "希望增加夜间模式")

    assert (result.category, result.priority) == (Category.SUGGESTION, Priority.LOW)


def test_triage_files_an_english_suggestion_as_low() -> None:
    result = triage("Suggestion", "It would be nice to have a dark mode.")

    assert (result.category, result.priority) == (Category.SUGGESTION, Priority.LOW)


def test_triage_files_unmatched_english_text_as_other_and_low() -> None:
    result = triage("Hello", "Just saying hi.")

    assert (result.category, result.priority, result.team, result.matched) == (
        Category.OTHER,
        Priority.LOW,
        "customer_service",
        (),
    )


def test_triage_files_unmatched_chinese_text_as_other_and_low() -> None:
    result = triage("你好", "随便问问")

    assert (result.category, result.priority) == (Category.OTHER, Priority.LOW)


def test_triage_picks_the_category_with_the_most_keyword_hits() -> None:
    result = triage("Refund", "The video crashes, the app shows an error and playback stops.")

    assert result.category is Category.TECHNICAL


def test_triage_breaks_a_tie_in_favour_of_the_earlier_category() -> None:
    result = triage("Refund", "The video stops.")

    assert result.category is Category.PAYMENT_REFUND


def test_triage_matches_english_keywords_regardless_of_case() -> None:
    result = triage("PASSWORD RESET", "I FORGOT MY PASSWORD")

    assert result.category is Category.ACCOUNT_SECURITY


def test_triage_reports_matched_keywords_lower_cased_and_once_each() -> None:
    result = triage("Video VIDEO", "video playback")

    assert result.matched == ("video", "playback")


# ---- triage: whole-word matching ----------------------------------------------------------


def test_triage_does_not_find_app_inside_happy() -> None:
    result = triage("Happy", "I am very happy with the course.")

    assert result.category is Category.OTHER


def test_triage_finds_app_as_a_whole_word() -> None:
    result = triage("The app", "The app will not open.")

    assert result.category is Category.TECHNICAL
    assert result.matched == ("app",)


def test_triage_does_not_find_error_inside_a_longer_word() -> None:
    result = triage("Errors", "Errorless terrors.")

    assert result.category is Category.OTHER


def test_triage_finds_a_chinese_keyword_inside_a_longer_sentence() -> None:
    result = triage("问题", "我昨天晚上课件里发现了错别字")

    assert result.category is Category.COURSE_CONTENT


# ---- priority_of --------------------------------------------------------------------------


def test_account_security_is_urgent_even_without_a_deadline() -> None:
    assert priority_of(Category.ACCOUNT_SECURITY, soon=False) is Priority.URGENT


def test_a_complaint_is_high_even_without_a_deadline() -> None:
    assert priority_of(Category.COMPLAINT, soon=False) is Priority.HIGH


def test_a_complaint_with_a_deadline_stays_high() -> None:
    assert priority_of(Category.COMPLAINT, soon=True) is Priority.HIGH


# ---- due_times ----------------------------------------------------------------------------

FIRST_RESPONSE = {"urgent": 30, "high": 60, "medium": 240, "low": 1440}
RESOLUTION = {"urgent": 120, "high": 480, "medium": 1440, "low": 4320}
START = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("priority", "first_response", "resolution"),
    [
        (Priority.URGENT, timedelta(minutes=30), timedelta(hours=2)),
        (Priority.HIGH, timedelta(hours=1), timedelta(hours=8)),
        (Priority.MEDIUM, timedelta(hours=4), timedelta(days=1)),
        (Priority.LOW, timedelta(days=1), timedelta(days=3)),
    ],
)
def test_due_times_add_the_targets_of_the_priority_to_the_start(
    priority: Priority, first_response: timedelta, resolution: timedelta
) -> None:
    due = due_times(
        priority, START, first_response_minutes=FIRST_RESPONSE, resolution_minutes=RESOLUTION
    )

    assert due == (START + first_response, START + resolution)


# ---- candidates ---------------------------------------------------------------------------


def _agent(
    agent_id: str,
    *,
    teams: tuple[str, ...] = ("tech_support",),
    languages: tuple[str, ...] = ("zh", "en"),
    role: Role = Role.AGENT,
) -> AgentSkills:
    return AgentSkills(
        agent_id=agent_id, role=role, teams=frozenset(teams), languages=frozenset(languages)
    )


def test_candidates_are_the_agents_of_the_team_who_speak_the_language_in_order() -> None:
    agents = [
        _agent("li", languages=("zh",)),
        _agent("smith", languages=("en",)),
        _agent("wang", languages=("zh", "en")),
        _agent("zhao", teams=("finance",), languages=("zh",)),
    ]

    assert candidates(agents, team="tech_support", language="zh") == ["li", "wang"]


def test_candidates_put_the_preferred_agent_first() -> None:
    agents = [_agent("li"), _agent("wang"), _agent("zhang")]

    assert candidates(agents, team="tech_support", language="zh", preferred="zhang") == [
        "zhang",
        "li",
        "wang",
    ]


def test_candidates_ignore_a_preferred_agent_who_lacks_the_skill() -> None:
    agents = [_agent("li"), _agent("zhao", teams=("finance",))]

    assert candidates(agents, team="tech_support", language="zh", preferred="zhao") == ["li"]


def test_candidates_for_a_supervisor_ticket_are_the_supervisors_and_admins_of_the_team() -> None:
    agents = [
        _agent("li"),
        _agent("chen", role=Role.SUPERVISOR),
        _agent("admin", role=Role.ADMIN),
        _agent("zhou", teams=("finance",), role=Role.SUPERVISOR),
    ]

    assert candidates(agents, team="tech_support", language="zh", supervisor=True) == [
        "chen",
        "admin",
    ]


def test_candidates_for_a_supervisor_ticket_fall_back_to_any_supervisor() -> None:
    agents = [
        _agent("li"),
        _agent("zhou", teams=("finance",), role=Role.SUPERVISOR),
    ]

    assert candidates(agents, team="tech_support", language="zh", supervisor=True) == ["zhou"]


def test_candidates_fall_back_to_the_team_when_nobody_speaks_the_language() -> None:
    agents = [
        _agent("li", languages=("zh",)),
        _agent("wang", languages=("zh",)),
        _agent("smith", teams=("finance",), languages=("en",)),
    ]

    assert candidates(agents, team="tech_support", language="en") == ["li", "wang"]


def test_candidates_are_empty_when_nobody_is_in_the_team() -> None:
    agents = [_agent("zhao", teams=("finance",))]

    assert candidates(agents, team="tech_support", language="zh") == []


def test_urgency_words_do_not_raise_a_suggestion_or_an_unmatched_ticket() -> None:
    assert triage("A suggestion", "please add dark mode today").priority is Priority.LOW
    assert triage("I am happy", "so happy today").priority is Priority.LOW
