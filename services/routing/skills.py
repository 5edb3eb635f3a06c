"""Who may take a ticket: agents' skills, seniority and weekly schedules, as pure decisions.

The hot path must not cost more with more agents. Agents with the same skills (teams, role,
languages, categories, channels, course lines, priorities, VIP, seniority) form one *pool*,
named by a hash of their ids, so each agent is in exactly one; Redis keeps each pool's
available agents in a sorted set by free capacity (`load.py`). The pools a ticket's need may
look in are worked out once per distinct need and roster (`Roster.plan`); an assignment then
reads the top of those pools' sorted sets and updates one sorted set, however many agents
there are: its cost grows with how varied the skills are, not with the headcount.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.agents import Role
from shared.events import Priority

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MILLI = 1000  # capacity and weights travel to Redis as integers, in thousandths


@dataclass(frozen=True, slots=True)
class Schedule:
    """A weekly schedule in one timezone: per day, [start, end) intervals of local time
    (end `None` is midnight). An agent without a schedule is always on shift."""

    timezone: str
    weekly: Mapping[str, tuple[tuple[time, time | None], ...]]

    def on_shift(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        now = local.time()
        return any(
            start <= now and (end is None or now < end)
            for start, end in self.weekly.get(DAYS[local.weekday()], ())
        )

    @property
    def has_hours(self) -> bool:
        return any(self.weekly.get(day) for day in DAYS)


def parse_schedule(raw: Mapping[str, Any] | None) -> Schedule | None:
    """The schedule as stored (JSON already validated by the admin API or the seed)."""
    if raw is None:
        return None
    weekly: Mapping[str, Sequence[Sequence[str]]] = raw.get("weekly") or {}
    return Schedule(
        timezone=str(raw.get("timezone") or "Asia/Shanghai"),
        weekly={
            day: tuple((_clock(s), None if e == "24:00" else _clock(e)) for s, e in spans)
            for day, spans in weekly.items()
        },
    )


def _clock(text: str) -> time:
    return time.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Profile:
    """What routing knows of an agent when it places a ticket. Empty skill sets mean any."""

    agent_id: str
    role: Role
    teams: frozenset[str]
    languages: frozenset[str]
    categories: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    course_lines: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    vip: bool = False
    senior: bool = False


@dataclass(frozen=True, slots=True)
class Need:
    """What a ticket asks of whoever takes it."""

    team: str
    language: str
    category: str
    channel: str
    priority: Priority
    course_id: str | None = None
    vip: bool = False
    supervisor: bool = False


@dataclass(frozen=True, slots=True)
class Pool:
    """A set of agents, named by a hash of their ids so that every replica names it alike."""

    id: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Where to look for an agent: tiers of pools, tried in order (seniors first for VIP and
    urgent tickets), the most free capacity within a tier winning; the last tier holds
    everyone who may take the ticket."""

    tiers: tuple[tuple[Pool, ...], ...]

    @property
    def members(self) -> frozenset[str]:
        return (
            frozenset(m for p in self.tiers[-1] for m in p.members) if self.tiers else frozenset()
        )


def pool(agent_ids: Iterable[str]) -> Pool:
    members = tuple(sorted(agent_ids))
    return Pool(hashlib.sha1("\n".join(members).encode()).hexdigest()[:16], members)


Groups = Mapping[Profile, Pool]  # a skill profile (agent_id "") -> the pool of its agents


def group(agents: Iterable[Profile]) -> Groups:
    """`agents` grouped by identical skills, one pool per group."""
    found: dict[Profile, list[str]] = {}
    for a in agents:
        found.setdefault(replace(a, agent_id=""), []).append(a.agent_id)
    return {profile: pool(ids) for profile, ids in found.items()}


def course_line_matches(line: str, course_id: str) -> bool:
    """A course line names a course (`PY-101`) or the prefix of its id before a dash (`PY`)."""
    course = course_id.upper()
    return course == line or course.startswith(line + "-")


def eligible(agents: Sequence[Profile], need: Need, *, any_team: bool = False) -> list[Profile]:
    """Agents who may take the ticket: the team, then each skill in turn (language, category,
    channel, course line, priority, VIP). A skill nobody left in the pool has is skipped, so
    the team still owns a ticket it has no specialist for, as it did when only language
    counted; where someone has it, the ticket waits for them. A supervisor ticket goes to the
    team's supervisors (or admins), else (or, `any_team`, in any case) to any supervisor."""
    if need.supervisor:
        bosses = [a for a in agents if a.role is not Role.AGENT]
        chosen = ([] if any_team else [a for a in bosses if need.team in a.teams]) or bosses
    else:
        chosen = [a for a in agents if need.team in a.teams]
    course = need.course_id
    tests = [
        lambda a: need.language in a.languages,
        lambda a: not a.categories or need.category in a.categories,
        lambda a: not a.channels or need.channel in a.channels,
        lambda a: (
            course is None
            or not a.course_lines
            or any(course_line_matches(line, course) for line in a.course_lines)
        ),
        lambda a: not a.priorities or need.priority in a.priorities,
        lambda a: not need.vip or a.vip,
    ]
    for test in tests:
        chosen = [a for a in chosen if test(a)] or chosen
    return chosen


def plan(groups: Groups, need: Need) -> Plan:
    """The pools to try for `need`: for a VIP or urgent ticket its seniors first; for a
    supervisor ticket the team's supervisors, then any supervisor, so that it never waits for
    its team's supervisors while another is free. Decided on the skill profiles, not on each
    agent: agents of one profile are all eligible or none."""
    chosen = eligible(list(groups), need)
    if not chosen:
        return Plan(())

    def tier(profiles: Iterable[Profile]) -> tuple[Pool, ...]:
        return tuple(sorted((groups[p] for p in profiles), key=lambda x: x.id))

    tiers = [tier(chosen)]
    if need.supervisor:
        anyone = {*chosen, *eligible(list(groups), need, any_team=True)}
        if len(anyone) > len(chosen):
            tiers.append(tier(anyone))
    seniors = tier(p for p in chosen if p.senior)
    if (need.vip or need.priority is Priority.URGENT) and 0 < len(seniors) < len(tiers[0]):
        tiers.insert(0, seniors)
    return Plan(tuple(tiers))


@dataclass
class Roster:
    """The agents as last loaded, with each distinct need's plan worked out once."""

    agents: tuple[Profile, ...] = ()
    _groups: Groups = field(default_factory=dict)
    _plans: dict[tuple[object, ...], Plan] = field(default_factory=dict)
    _lines: frozenset[str] = frozenset()
    _version: str | None = None

    def replace(self, agents: Sequence[Profile]) -> bool:
        """Take a newly loaded roster; returns whether it differs (plans are then redone)."""
        fresh = tuple(sorted(agents, key=lambda a: a.agent_id))
        if fresh == self.agents:
            return False
        self.agents = fresh
        self._groups = group(fresh)
        self._plans = {}
        self._lines = frozenset(line for a in fresh for line in a.course_lines)
        self._version = None
        return True

    @property
    def version(self) -> str:
        """A name for this roster's skills, the same in every replica: the skill sets sorted,
        since a frozenset's order (and so its repr) differs between processes, and replicas
        naming one roster apart would drop each other's pools at every sync. Worked out once per
        roster: every sync asks for it, and a roster seldom changes."""
        if self._version is None:
            canonical = [
                [sorted(v) if isinstance(v, frozenset) else v for v in astuple(a)]
                for a in self.agents
            ]
            self._version = hashlib.sha1(json.dumps(canonical).encode()).hexdigest()[:16]
        return self._version

    def plan(self, need: Need) -> Plan:
        # Keyed by the roster's course lines the course matches, not by the course id itself,
        # so the cache stays as small as the roster's skills, whatever the catalogue.
        lines = (
            frozenset(line for line in self._lines if course_line_matches(line, need.course_id))
            if need.course_id
            else None
        )
        key = (
            need.team,
            need.language,
            need.category,
            need.channel,
            need.priority,
            lines,
            need.vip,
            need.supervisor,
        )
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = plan(self._groups, need)
        return found


def weight_milli(weights: Mapping[str, float], channel: str) -> int:
    """The share of capacity one ticket of `channel` takes, in thousandths (1 when unset)."""
    return round(weights.get(channel, 1.0) * MILLI)


def team_hours_lost(
    schedules_before: Mapping[str, Sequence[Schedule | None]],
    schedules_after: Mapping[str, Sequence[Schedule | None]],
) -> list[str]:
    """Teams that had working hours before a change and have none after it (no member on
    any shift), which the admin API refuses."""

    def has_hours(members: Sequence[Schedule | None]) -> bool:
        return any(s is None or s.has_hours for s in members)

    return sorted(
        team
        for team, before in schedules_before.items()
        if has_hours(before) and not has_hours(schedules_after.get(team, ()))
    )


def available(
    *,
    online: bool,
    last_seen_at: datetime,
    schedule: Schedule | None,
    at: datetime,
    presence_ttl: timedelta | None,
) -> bool:
    """Whether an agent may be given tickets now: online, seen within the presence TTL (a
    heartbeat or a presence change; None: presence does not lapse), and on shift."""
    seen = presence_ttl is None or at - last_seen_at <= presence_ttl
    return online and seen and (schedule is None or schedule.on_shift(at))
