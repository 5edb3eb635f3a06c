"""What the workspace shows, decided apart from HTTP and SQL: which views a user has, how far a
ticket is from its SLA, and how a ticket's conversation reads to an agent."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from shared.agents import Role

BEIJING = ZoneInfo("Asia/Shanghai")
# A ticket whose next target is this close is "at risk" in the view of that name.
AT_RISK_WITHIN = timedelta(hours=1)
OPEN = ("new", "queued", "assigned", "reopened", "pending_learner")


class View(StrEnum):
    MINE = "mine"
    TEAM = "team"
    REVIEW = "review"
    RISK = "risk"
    ALL = "all"


SUPERVISING = frozenset({Role.SUPERVISOR, Role.ADMIN})


def views_for(role: Role) -> tuple[View, ...]:
    """The left nav: every user has their own, their teams' and the review and risk views;
    supervisors and admins also see every open ticket."""
    if role in SUPERVISING:
        return tuple(View)
    return (View.MINE, View.TEAM, View.REVIEW, View.RISK)


class DueState(StrEnum):
    OK = "ok"
    SOON = "soon"  # within AT_RISK_WITHIN
    BREACHED = "breached"
    PAUSED = "paused"  # pending the learner: routing's clocks stand still


@dataclass(frozen=True)
class Due:
    """A ticket's next SLA target: which one, when, and how it stands `at` a moment."""

    target: str  # first_response | resolution
    due_at: datetime
    state: DueState
    seconds_left: int


def next_due(ticket: Mapping[str, Any], at: datetime) -> Due | None:
    """The first response until an agent answered, then the resolution; None for a ticket
    that is done or has no targets yet (not triaged)."""
    if ticket["status"] not in OPEN:
        return None
    if ticket.get("first_responded_at") is None and ticket.get("first_response_due_at"):
        target, due_at = "first_response", ticket["first_response_due_at"]
    elif ticket.get("resolution_due_at"):
        target, due_at = "resolution", ticket["resolution_due_at"]
    else:
        return None
    left = int((due_at - at).total_seconds())
    if ticket["status"] == "pending_learner":
        state = DueState.PAUSED
    elif left < 0:
        state = DueState.BREACHED
    elif left <= AT_RISK_WITHIN.total_seconds():
        state = DueState.SOON
    else:
        state = DueState.OK
    return Due(target=target, due_at=due_at, state=state, seconds_left=left)


def countdown(seconds: int) -> str:
    """A short remaining (or overdue, negative) time: 2d 3h, 3h 05m, 12m, 45s — the same the
    page's script shows as it ticks, so a page without script reads alike."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m"
    return f"{sign}{secs}s"


def beijing(at: datetime | None) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if at else ""


@dataclass(frozen=True)
class Item:
    """One entry of the conversation as an agent reads it."""

    kind: str  # description | message | reply | note | event
    at: datetime
    author: str | None
    channel: str | None
    body: str | None
    attachments: tuple[Mapping[str, Any], ...]
    event: str | None  # an event's kind (assigned, resolved…)
    detail: Mapping[str, Any]


# History kinds the conversation already shows as messages, replies or notes.
_SHOWN_AS_TEXT = frozenset(
    {"created", "replied", "message_received", "note_added", "noted", "also_received"}
)


def conversation(rows: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Learner messages, replies, internal notes and system events in the order they
    happened; events that only repeat a message shown beside them are left out."""
    items = []
    for row in rows:
        kind = row["kind"]
        if kind == "event" and row["body"] in _SHOWN_AS_TEXT:
            continue
        detail = row.get("detail") or {}
        detail = detail if isinstance(detail, Mapping) else {}
        items.append(
            Item(
                kind=kind,
                at=row["at"],
                author=row.get("author"),
                channel=row.get("channel"),
                body=None if kind == "event" else row["body"],
                attachments=tuple(row.get("attachments") or detail.get("attachments") or ()),
                event=row["body"] if kind == "event" else None,
                detail=detail,
            )
        )
    items.sort(key=lambda i: i.at)
    return items


def event_text(item: Item, words: Mapping[str, Any]) -> str:
    """An event's one line in the user's language, filled from its detail."""
    event = item.event or ""
    template: str = words["events"].get(event, event.replace("_", " "))
    detail = item.detail
    to = detail.get("to") or {}  # a retriage's new triage
    category = to.get("category") or detail.get("category")
    priority = to.get("priority") or detail.get("priority")
    return template.format(
        who=detail.get("agent_id") or item.author or "",
        team=detail.get("team") or "",
        target=detail.get("to_agent") or detail.get("to_team") or "",
        reason=detail.get("reason") or "",
        number=detail.get("number") or "",
        category=words["category"].get(category, category or ""),
        priority=words["priority"].get(priority, priority or ""),
        title=detail.get("title") or "",
        note=detail.get("note") or "",
    )


class Presence(StrEnum):
    """An agent's presence on the supervisor board, from routing's last `agent.status`."""

    AVAILABLE = "available"  # may be given tickets and has room
    FULL = "full"  # available, but their load fills their capacity
    AWAY = "away"  # online and on shift, but not seen within routing's presence TTL
    OFF_SHIFT = "off_shift"  # online outside their schedule
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # routing has not said, or not lately (see STATUS_STALE_AFTER)


# routing announces every agent at least every ~30 s: a status older than this is routing
# being down or cut off, and the board says so rather than show it as fact.
STATUS_STALE_AFTER = timedelta(minutes=2)


def presence_of(status: Mapping[str, Any], at: datetime) -> Presence:
    """What the board says of an agent, given the status columns (NULL when routing never
    announced them)."""
    said = status.get("status_at")
    if said is None or at - said > STATUS_STALE_AFTER:
        return Presence.UNKNOWN
    if not status["online"]:
        return Presence.OFFLINE
    if not status["on_shift"]:
        return Presence.OFF_SHIFT
    if not status["available"]:
        return Presence.AWAY
    if status["used"] >= status["capacity"]:
        return Presence.FULL
    return Presence.AVAILABLE
