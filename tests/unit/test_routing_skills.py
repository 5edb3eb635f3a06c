"""Unit tests for services.routing.skills: who may take a ticket, seniors first, schedules,
presence, and the seed's and admin API's validation of skills."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.routing.skills import (
    Need,
    Profile,
    Roster,
    available,
    eligible,
    group,
    parse_schedule,
    plan,
    pool,
    team_hours_lost,
    weight_milli,
)
from shared.agents import Role, Skills, WeeklySchedule
from shared.events import Priority

# A Monday, 10:00 in Shanghai.
MONDAY_10 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def agent(agent_id: str, **kw: object) -> Profile:
    fields: dict[str, object] = {
        "role": Role.AGENT,
        "teams": frozenset({"tech_support"}),
        "languages": frozenset({"zh", "en"}),
    }
    fields.update({k: frozenset(v) if isinstance(v, set) else v for k, v in kw.items()})
    return Profile(agent_id=agent_id, **fields)  # type: ignore[arg-type]


def need(**kw: object) -> Need:
    fields: dict[str, object] = {
        "team": "tech_support",
        "language": "zh",
        "category": "technical",
        "channel": "chat",
        "priority": Priority.MEDIUM,
    }
    fields.update(kw)
    return Need(**fields)  # type: ignore[arg-type]


def ids(agents: list[Profile]) -> list[str]:
    return sorted(a.agent_id for a in agents)


# ---- eligible -------------------------------------------------------------------------------


def test_only_the_team_and_speakers_of_the_language_are_eligible() -> None:
    agents = [
        agent("li", languages={"zh"}),
        agent("smith", languages={"en"}),
        agent("zhao", teams={"finance"}, languages={"zh"}),
    ]

    assert ids(eligible(agents, need(language="zh"))) == ["li"]


def test_a_skill_nobody_in_the_team_has_is_skipped_rather_than_leave_the_ticket_unowned() -> None:
    agents = [agent("li", languages={"zh"}), agent("wang", languages={"zh"})]

    assert ids(eligible(agents, need(language="en"))) == ["li", "wang"]


@pytest.mark.parametrize(
    ("skill", "theirs", "elsewhere", "ticket"),
    [
        ("categories", {"account_security"}, {"payment_refund"}, {"category": "account_security"}),
        ("channels", {"email"}, {"wechat"}, {"channel": "email"}),
        ("course_lines", {"PY"}, {"IELTS"}, {"course_id": "py-101"}),
        ("priorities", {"urgent"}, {"low"}, {"priority": Priority.URGENT}),
    ],
)
def test_specialists_and_generalists_take_a_ticket_other_specialists_do_not(
    skill: str, theirs: set[str], elsewhere: set[str], ticket: dict[str, object]
) -> None:
    agents = [agent("spec", **{skill: theirs}), agent("any"), agent("other", **{skill: elsewhere})]

    assert ids(eligible(agents, need(**ticket))) == ["any", "spec"]


def test_a_vip_ticket_goes_to_the_teams_vip_agents_when_it_has_any() -> None:
    agents = [agent("vip", vip=True), agent("li")]

    assert ids(eligible(agents, need(vip=True))) == ["vip"]
    assert ids(eligible(agents, need())) == ["li", "vip"]
    assert ids(eligible(agents[1:], need(vip=True))) == ["li"]


def test_a_course_line_matches_the_course_or_its_prefix_before_a_dash() -> None:
    agents = [agent("py", course_lines={"PY"}), agent("ielts", course_lines={"IELTS-7"})]

    assert ids(eligible(agents, need(course_id="PY-101"))) == ["py"]
    assert ids(eligible(agents, need(course_id="ielts-7"))) == ["ielts"]
    assert ids(eligible(agents, need(course_id="PYTHON-1"))) == ["ielts", "py"]  # nobody: team


def test_a_supervisor_ticket_goes_to_the_teams_supervisors_else_any_supervisor() -> None:
    agents = [
        agent("li"),
        agent("sue", role=Role.SUPERVISOR),
        agent("zhou", role=Role.SUPERVISOR, teams={"finance"}),
    ]

    assert ids(eligible(agents, need(supervisor=True))) == ["sue"]
    assert ids(eligible(agents[:1] + agents[2:], need(supervisor=True))) == ["zhou"]


def test_nobody_in_the_team_means_no_pools() -> None:
    assert plan(group([agent("zhao", teams={"finance"})]), need()).tiers == ()


# ---- plan: seniors first ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ticket",
    [{"priority": Priority.URGENT}, {"vip": True}],
    ids=["urgent", "vip"],
)
def test_urgent_and_vip_tickets_look_among_seniors_first(ticket: dict[str, object]) -> None:
    agents = [agent("li"), agent("old", senior=True)]

    found = plan(group(agents), need(**ticket))

    assert [[p.members for p in tier] for tier in found.tiers] == [
        [("old",)],
        sorted([("li",), ("old",)], key=lambda m: pool(m).id),
    ]


def test_ordinary_tickets_look_in_one_tier_of_everyone() -> None:
    agents = [agent("li"), agent("old", senior=True)]

    assert plan(group(agents), need()).members == {"li", "old"}
    assert len(plan(group(agents), need()).tiers) == 1


def test_agents_with_the_same_skills_share_one_pool_and_each_agent_is_in_one() -> None:
    agents = [agent("li"), agent("wang"), agent("en", languages={"en"}), agent("old", senior=True)]

    (tier,) = plan(group(agents), need(language="en")).tiers

    assert sorted(p.members for p in tier) == [("en",), ("li", "wang"), ("old",)]


def test_a_pool_is_named_by_its_members_alone() -> None:
    assert pool(["b", "a"]) == pool(["a", "b"]) != pool(["a"])


def test_the_roster_plans_each_distinct_need_once_and_again_after_a_change() -> None:
    roster = Roster()
    roster.replace([agent("li"), agent("py", course_lines={"PY"})])

    first = roster.plan(need(course_id="PY-1"))
    assert roster.plan(need(course_id="PY-2")) is first  # same course line: same plan
    assert first.members == {"li", "py"}
    assert not roster.replace([agent("py", course_lines={"PY"}), agent("li")])  # same roster
    assert roster.replace([agent("li")])
    assert roster.plan(need(course_id="PY-1")) is not first


def test_the_roster_version_changes_with_the_roster_and_only_then() -> None:
    roster = Roster()
    empty = roster.version
    roster.replace([agent("li")])
    one = roster.version
    assert one != empty
    roster.replace([agent("li")])  # the same roster again
    assert roster.version == one
    roster.replace([agent("li", languages={"en"})])  # a skill changed
    assert roster.version not in (empty, one)
    roster.replace([agent("li")])
    assert roster.version == one


def test_every_replica_names_the_same_roster_alike_whatever_its_hash_seed() -> None:
    """Replicas naming one roster apart dropped each other's pools at every sync (a frozenset's
    order follows the process's string hash seed)."""
    script = (
        "from tests.unit.test_routing_skills import agent;"
        "from services.routing.skills import Roster;"
        "r = Roster();"
        "r.replace([agent('li', categories={'technical', 'payment_refund', 'complaint'}),"
        " agent('py', languages={'zh', 'en', 'ja'}, course_lines={'PY', 'JS'})]);"
        "print(r.version)"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(3)
    }
    assert len(names) == 1, names


# ---- schedules and presence ---------------------------------------------------------------


def test_an_agent_is_on_shift_only_inside_a_span_of_the_local_weekday() -> None:
    s = parse_schedule({"timezone": "Asia/Shanghai", "weekly": {"mon": [["09:00", "18:00"]]}})
    assert s is not None

    assert s.on_shift(MONDAY_10)
    assert not s.on_shift(MONDAY_10 + timedelta(hours=8))  # 18:00 Shanghai: the end is open
    assert not s.on_shift(MONDAY_10 + timedelta(days=1))  # Tuesday


def test_a_span_to_24_00_lasts_until_midnight() -> None:
    s = parse_schedule({"timezone": "UTC", "weekly": {"mon": [["20:00", "24:00"]]}})
    assert s is not None

    assert s.on_shift(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert not s.on_shift(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("online", "seen_ago", "on_shift", "expected"),
    [
        (True, timedelta(minutes=1), True, True),
        (False, timedelta(minutes=1), True, False),
        (True, timedelta(minutes=16), True, False),
        (True, timedelta(minutes=1), False, False),
    ],
    ids=["present", "offline", "lapsed", "off-shift"],
)
def test_only_an_online_agent_seen_lately_and_on_shift_is_available(
    online: bool, seen_ago: timedelta, on_shift: bool, expected: bool
) -> None:
    weekly = {"mon": [["09:00", "18:00"]]} if on_shift else {"sun": [["09:00", "18:00"]]}
    s = parse_schedule({"timezone": "Asia/Shanghai", "weekly": weekly})

    assert (
        available(
            online=online,
            last_seen_at=MONDAY_10 - seen_ago,
            schedule=s,
            at=MONDAY_10,
            presence_ttl=timedelta(minutes=15),
        )
        is expected
    )


def test_without_a_presence_ttl_an_online_agent_never_lapses() -> None:
    assert available(
        online=True,
        last_seen_at=MONDAY_10 - timedelta(days=30),
        schedule=None,
        at=MONDAY_10,
        presence_ttl=None,
    )


def test_a_change_that_leaves_a_team_without_hours_is_found() -> None:
    nine_to_six = parse_schedule({"weekly": {"mon": [["09:00", "18:00"]]}})
    none = parse_schedule({"weekly": {}})

    assert team_hours_lost({"a": [nine_to_six, none]}, {"a": [none, none]}) == ["a"]
    assert team_hours_lost({"a": [nine_to_six, None]}, {"a": [none, None]}) == []
    assert team_hours_lost({"a": [none]}, {"a": [none]}) == []  # had none before: not this


def test_channel_weights_travel_in_thousandths_and_default_to_one() -> None:
    assert weight_milli({"email": 0.5}, "email") == 500
    assert weight_milli({"email": 0.5}, "chat") == 1000


# ---- validation of skills (seed and admin API) --------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("categories", ["technical", "bogus", "nope"], "unknown categories: bogus, nope"),
        ("channels", ["fax"], "unknown channels: fax"),
        ("priorities", ["asap"], "unknown priorities: asap"),
        ("languages", ["fr"], "unknown languages: fr"),
    ],
)
def test_unknown_skills_are_refused_naming_them(field: str, value: list[str], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Skills.model_validate({field: value})

    assert named in str(caught.value)


@pytest.mark.parametrize(
    "weekly",
    [
        {"mon": [["18:00", "09:00"]]},
        {"mon": [["24:00", "24:00"]]},
        {"monday": []},
        {"mon": [["9", "10"]]},
    ],
)
def test_a_schedule_that_cannot_be_one_is_refused(weekly: object) -> None:
    with pytest.raises(ValidationError):
        WeeklySchedule.model_validate({"weekly": weekly})


def test_an_unknown_timezone_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="unknown timezone: Mars/Base"):
        WeeklySchedule.model_validate({"timezone": "Mars/Base", "weekly": {}})


def test_a_supervisor_ticket_tries_the_teams_supervisors_then_any_supervisor() -> None:
    """Supervisors of the team first; when none of them is free (offline, full) the ticket
    goes to another supervisor rather than wait."""
    agents = [
        agent("li"),
        agent("sue", role=Role.SUPERVISOR),
        agent("zhou", role=Role.SUPERVISOR, teams={"finance"}),
    ]

    found = plan(group(agents), need(supervisor=True))

    assert [sorted(m for p in tier for m in p.members) for tier in found.tiers] == [
        ["sue"],
        ["sue", "zhou"],
    ]
    assert found.members == {"sue", "zhou"}
    only_others = plan(group(agents[:1] + agents[2:]), need(supervisor=True))
    assert [[p.members for p in tier] for tier in only_others.tiers] == [[("zhou",)]]
