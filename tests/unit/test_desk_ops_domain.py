"""desk's pure decisions for what agents do to a ticket: who sees it (their teams'), mentions,
transfers, merges, macros, what a search box holds, and how retention masks contacts."""

import uuid

import pytest

from services.desk.articles import without_learner
from services.desk.domain import (
    RESOLUTION_CODES,
    Conflict,
    Invalid,
    NotFound,
    ResolutionCode,
    SearchKind,
    Status,
    check_macro,
    check_may_see,
    check_merge,
    check_transfer,
    mentioned,
    render_macro,
    search_kind,
    team_for,
)
from shared.agents import Role
from shared.retention import masked, pseudonym

# ---- who sees a ticket --------------------------------------------------------------------


def test_an_agent_sees_a_colleagues_ticket_in_their_team() -> None:
    check_may_see(
        agent_id="li", role=Role.AGENT, assignee_id="wang", teams=("finance",), team="finance"
    )


def test_a_ticket_of_another_team_is_not_found_for_an_agent() -> None:
    with pytest.raises(NotFound, match="no such ticket"):
        check_may_see(
            agent_id="li", role=Role.AGENT, assignee_id=None, teams=("finance",), team="complaints"
        )


def test_an_agent_sees_a_ticket_assigned_to_them_in_another_team() -> None:
    check_may_see(
        agent_id="li", role=Role.AGENT, assignee_id="li", teams=("finance",), team="complaints"
    )


# ---- mentions -------------------------------------------------------------------------------


def test_mentions_are_agent_ids_after_an_at_sign_once_each_in_order() -> None:
    assert mentioned("@bob 请看一下，@alice 也看 @bob") == ["bob", "alice"]


def test_an_email_address_is_not_a_mention() -> None:
    assert mentioned("learner wrote from li.lei@example.com") == []


# ---- transfers -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
def test_a_resolved_or_closed_ticket_cannot_be_transferred(status: Status) -> None:
    with pytest.raises(Conflict, match=str(status)):
        check_transfer(
            status=status, team="finance", assignee_id="li", to_agent_id="wang", to_team="finance"
        )


def test_a_transfer_to_the_agent_who_holds_it_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="already with li"):
        check_transfer(
            status=Status.ASSIGNED,
            team="finance",
            assignee_id="li",
            to_agent_id="li",
            to_team="finance",
        )


def test_a_transfer_of_a_queued_ticket_to_its_own_queue_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="queue"):
        check_transfer(
            status=Status.QUEUED,
            team="finance",
            assignee_id=None,
            to_agent_id=None,
            to_team="finance",
        )


def test_an_assigned_ticket_may_go_back_to_its_teams_queue() -> None:
    check_transfer(
        status=Status.ASSIGNED,
        team="finance",
        assignee_id="li",
        to_agent_id=None,
        to_team="finance",
    )


def test_a_ticket_handed_to_an_agent_keeps_its_team_when_they_are_in_it() -> None:
    assert team_for(("course_ops", "finance"), current="finance") == "finance"


def test_a_ticket_handed_to_an_agent_of_another_team_takes_their_first_team() -> None:
    assert team_for(("course_ops", "finance"), current="tech_support") == "course_ops"


def test_an_agent_in_no_team_cannot_take_a_ticket() -> None:
    with pytest.raises(Invalid, match="no team"):
        team_for((), current="finance")


# ---- merges ----------------------------------------------------------------------------------


def test_a_ticket_cannot_be_merged_into_itself() -> None:
    same = uuid.uuid4()
    with pytest.raises(Conflict, match="itself"):
        check_merge(
            ticket_id=same, status=Status.ASSIGNED, into_id=same, into_status=Status.ASSIGNED
        )


def test_a_ticket_cannot_be_merged_into_a_closed_one() -> None:
    with pytest.raises(Conflict, match="closed"):
        check_merge(
            ticket_id=uuid.uuid4(),
            status=Status.ASSIGNED,
            into_id=uuid.uuid4(),
            into_status=Status.CLOSED,
        )


def test_a_closed_ticket_cannot_be_merged() -> None:
    with pytest.raises(Conflict, match="closed"):
        check_merge(
            ticket_id=uuid.uuid4(),
            status=Status.CLOSED,
            into_id=uuid.uuid4(),
            into_status=Status.ASSIGNED,
        )


def test_an_open_duplicate_merges_into_a_resolved_ticket() -> None:
    check_merge(
        ticket_id=uuid.uuid4(),
        status=Status.QUEUED,
        into_id=uuid.uuid4(),
        into_status=Status.RESOLVED,
    )


# ---- macros ----------------------------------------------------------------------------------

VALUES: dict[str, dict[str, str | None]] = {
    "learner": {"name": "王小明", "email": "wxm@example.com"},
    "ticket": {"number": "CL-000042", "subject": "退款", "category": "refund"},
    "agent": {"name": "Alice Chen"},
}


def test_a_macro_fills_in_the_learner_the_ticket_and_the_agent() -> None:
    body = "{{ learner.name }}您好，工单 {{ ticket.number }} 已处理。— {{ agent.name }}"

    assert render_macro(body, VALUES) == "王小明您好，工单 CL-000042 已处理。— Alice Chen"


def test_a_macros_output_is_plain_text_not_escaped_here() -> None:
    values = {**VALUES, "learner": {"name": "<script>x</script>", "email": None}}

    assert render_macro("Hi {{ learner.name }}", values) == "Hi <script>x</script>"


def test_a_macro_with_an_unknown_variable_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(Invalid, match=r"unknown variable.*learner\.name"):
        check_macro("Dear {{ learner.surname.x }}")


def test_a_macro_with_broken_syntax_is_refused() -> None:
    with pytest.raises(Invalid, match="not valid"):
        check_macro("Dear {{ learner.name ")


@pytest.mark.parametrize(
    "body",
    [
        "{{ learner.__class__.__mro__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ learner.items.__globals__ }}",
    ],
)
def test_the_sandbox_keeps_a_macro_from_reaching_python(body: str) -> None:
    with pytest.raises(Invalid):
        check_macro(body)


@pytest.mark.parametrize(
    "body",
    [
        "{{ 9**9**9 }}",
        "{{ 'x' * 999999999 }}",
        "{{ 'x'|center(999999999) }}",
        "{% for i in x %}{% endfor %}",
    ],
)
def test_a_macro_holds_text_and_variables_only_so_it_cannot_blow_up(body: str) -> None:
    with pytest.raises(Invalid, match="text and variables only"):
        check_macro(body)


def test_a_missing_value_renders_as_nothing() -> None:
    values = {**VALUES, "learner": {"name": "Li", "email": None}}

    assert render_macro("[{{ learner.email }}]", values) == "[]"


# ---- resolution codes ------------------------------------------------------------------------


def test_agents_pick_every_resolution_code_but_self_served() -> None:
    assert ResolutionCode.SELF_SERVED not in RESOLUTION_CODES
    assert ResolutionCode.ANSWERED in RESOLUTION_CODES


# ---- the search box ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("CL-000123", (SearchKind.NUMBER, "CL-000123")),
        ("cl-123", (SearchKind.NUMBER, "CL-000123")),
        ("123", (SearchKind.NUMBER, "CL-000123")),
        ("Li.Lei@Example.com", (SearchKind.EMAIL, "li.lei@example.com")),
        ("138 0013 8000", (SearchKind.PHONE, "8613800138000")),
        ("+86 138-0013-8000", (SearchKind.PHONE, "8613800138000")),
        ("退款 多久到账", (SearchKind.TEXT, "退款 多久到账")),
        ("Maria Garcia", (SearchKind.TEXT, "Maria Garcia")),
    ],
)
def test_the_search_box_tells_numbers_contacts_and_words_apart(
    q: str, expected: tuple[SearchKind, str]
) -> None:
    assert search_kind(q) == expected


# ---- retention ------------------------------------------------------------------------------


def test_contacts_in_a_message_are_masked_and_the_rest_kept() -> None:
    text = "请联系我 13800138000 或 +86 139-1234-5678，邮箱 wang.li@qq.com，订单号 2024 已付"

    assert masked(text) == "请联系我 [phone] 或 [phone]，邮箱 [email]，订单号 2024 已付"


def test_masking_twice_changes_nothing_more() -> None:
    once = masked("mail me: a.b@example.org, tel 020-8888 1234")

    assert masked(once) == once


def test_a_pseudonym_is_stable_per_ticket_and_says_nothing_of_the_learner() -> None:
    ticket_id = uuid.uuid4()

    assert pseudonym(ticket_id) == pseudonym(ticket_id)
    assert pseudonym(ticket_id) != pseudonym(uuid.uuid4())
    assert pseudonym(ticket_id).startswith("learner-")


def test_a_ticket_not_yet_placed_cannot_be_transferred() -> None:
    with pytest.raises(Conflict, match="new"):
        check_transfer(
            status=Status.NEW, team=None, assignee_id=None, to_agent_id="li", to_team="finance"
        )


def test_a_ticket_waiting_on_the_learner_goes_to_a_person_not_a_queue() -> None:
    check_transfer(
        status=Status.PENDING_LEARNER,
        team="finance",
        assignee_id="li",
        to_agent_id="wang",
        to_team="finance",
    )
    with pytest.raises(Conflict, match="waits on the learner"):
        check_transfer(
            status=Status.PENDING_LEARNER,
            team="finance",
            assignee_id="li",
            to_agent_id=None,
            to_team="course_ops",
        )


def test_a_reply_drafted_into_an_article_loses_its_learner() -> None:
    learner = {
        "name": "李雷",
        "email": "lilei@example.com",
        "phone": "13800138000",
        "learner_id": "L-1001",
    }
    reply = "李雷同学您好：账号 L-1001 已解绑 lilei@example.com，新手机 139-0013-9000 收验证码。"
    assert without_learner(reply, learner, "zh") == (
        "[学员]同学您好：账号 [learner id] 已解绑 [email]，新手机 [phone] 收验证码。"
    )
    # a one-letter name would hit ordinary words: it is left, and so is a text without them
    assert without_learner("A reply to Al", {"name": "A"}, "en") == "A reply to Al"
    assert (
        without_learner("Dear Lei Li, done.", {"name": "Lei Li"}, "en") == "Dear [learner], done."
    )
