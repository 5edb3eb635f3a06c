"""The board's skills-and-schedule form: an agent's skills as form fields, and a posted form read
back into the `AgentSkills` routing takes.

A posted form is checked by the very rules routing's admin API applies (`shared.agents.Skills`,
with its weekly schedule), so the page refuses what routing would refuse, naming why, before
anything is sent. The one rule it cannot check (a team left with no working hours at all needs
routing's whole roster) is routing's: it dead-letters such a change with the reason.

A form repeats no field name (`shared.forms.read_form` keeps one value per name), so each
checkbox is named by its value: `language-zh`, `category-technical`, `channel-chat`, ...
"""

import re
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import ValidationError

from shared.agents import LANGUAGES, Day, Skills
from shared.events import AgentSkills, Category, Channel, Priority, WeeklyHours

DAYS: tuple[str, ...] = get_args(Day)
DEFAULT_ZONE = "Asia/Shanghai"
# Where agents of a Chinese online school are likely to work; any IANA zone is accepted.
ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)
CHOICES: dict[str, tuple[str, ...]] = {
    "language": LANGUAGES,
    "category": tuple(Category),
    "channel": tuple(Channel),
    "priority": tuple(Priority),
}
_SPAN = re.compile(r"(\d{1,2}:\d{2})\s*[-–~]\s*(\d{1,2}:\d{2})")
_SEPARATORS = re.compile(r"[,，;；\s]+")
MAX_FIELD = 500


class SkillsRefused(Exception):
    """The form asks for what routing would refuse; `message` says what, in the page's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def as_form(skills: AgentSkills) -> dict[str, str]:
    """The form's fields for `skills`, as a browser would post them unchanged."""
    fields = {
        f"{kind}-{value}": "on"
        for kind, chosen in (
            ("language", skills.languages),
            ("category", skills.categories),
            ("channel", skills.channels),
            ("priority", skills.priorities),
        )
        for value in chosen
    }
    fields["course_lines"] = ", ".join(skills.course_lines)
    if skills.vip:
        fields["vip"] = "on"
    if skills.senior:
        fields["senior"] = "on"
    schedule = skills.schedule
    fields["schedule"] = "always" if schedule is None else "weekly"
    fields["timezone"] = schedule.timezone if schedule else DEFAULT_ZONE
    for day in DAYS:
        spans = schedule.weekly.get(day, ()) if schedule else ()
        fields[f"day-{day}"] = ", ".join(f"{start}-{end}" for start, end in spans)
    return fields


def read(form: Mapping[str, str], words: Mapping[str, Any]) -> AgentSkills:
    """The skills a posted form asks for, or SkillsRefused naming the first thing wrong."""
    chosen = {
        kind: tuple(v for v in values if form.get(f"{kind}-{v}"))
        for kind, values in CHOICES.items()
    }
    if not chosen["language"]:
        raise SkillsRefused(words["no_language"])
    schedule: dict[str, Any] | None = None
    if form.get("schedule") == "weekly":
        weekly = {day: spans for day in DAYS if (spans := _spans(form, day, words))}
        schedule = {"timezone": form.get("timezone", "").strip()[:MAX_FIELD], "weekly": weekly}
    raw = {
        "languages": chosen["language"],
        "categories": chosen["category"],
        "channels": chosen["channel"],
        "priorities": chosen["priority"],
        "course_lines": tuple(
            line.upper()
            for line in _SEPARATORS.split(form.get("course_lines", "")[:MAX_FIELD])
            if line
        ),
        "vip": bool(form.get("vip")),
        "senior": bool(form.get("senior")),
        "schedule": schedule,
    }
    try:
        valid = Skills.model_validate(raw)
    except ValidationError as exc:
        raise SkillsRefused(words["refused"].format(reason=reasons(exc))) from None
    return AgentSkills(
        languages=valid.languages,
        categories=valid.categories,
        channels=valid.channels,
        course_lines=valid.course_lines,
        priorities=valid.priorities,
        vip=valid.vip,
        senior=valid.senior,
        schedule=None
        if valid.schedule is None
        else WeeklyHours(
            timezone=valid.schedule.timezone,
            weekly={str(day): spans for day, spans in valid.schedule.weekly.items()},
        ),
    )


def _spans(form: Mapping[str, str], day: str, words: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A day's field, "09:00-12:00, 13:00-18:00", as spans ("9:00" is 09:00)."""
    text = form.get(f"day-{day}", "")[:MAX_FIELD].strip()
    spans = []
    for part in re.split(r"[,，;；]+", text) if text else ():
        if not (found := _SPAN.fullmatch(part.strip())):
            name = words["days"][day]
            raise SkillsRefused(words["bad_span"].format(day=name, span=part.strip()))
        spans.append((found[1].zfill(5), found[2].zfill(5)))
    return spans


def reasons(exc: ValidationError) -> str:
    """pydantic's refusal as one line: each field and why, as routing's dead letter says it."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False, include_context=False)
    )
