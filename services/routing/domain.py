"""routing's decisions: category and priority from text, SLA due times, who may take a ticket."""

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from shared.agents import Role
from shared.events import Category, Priority

T = TypeVar("T")

# Rules in order of precedence: on equal keyword counts the earlier category wins.
KEYWORDS: tuple[tuple[Category, tuple[str, ...]], ...] = (
    (
        Category.ACCOUNT_SECURITY,
        (
            "被盗",
            "盗号",
            "异地登录",
            "陌生登录",
            "账号被锁",
            "账号锁定",
            "冻结",
            "密码",
            "泄露",
            "隐私",
            "hacked",
            "stolen",
            "locked out",
            "unknown login",
            "suspicious login",
            "password",
            "compromised",
            "data leak",
            "personal data",
        ),
    ),
    (
        Category.COMPLAINT,
        (
            "投诉",
            "不满",
            "态度差",
            "态度恶劣",
            "差评",
            "赔偿",
            "举报",
            "欺骗",
            "complain",
            "complaint",
            "unacceptable",
            "compensation",
            "rude",
            "terrible service",
        ),
    ),
    (
        Category.PAYMENT_REFUND,
        (
            "退款",
            "退费",
            "扣费",
            "扣款",
            "多扣",
            "发票",
            "支付",
            "付款",
            "收费",
            "refund",
            "charged",
            "charge",
            "invoice",
            "payment",
            "billing",
        ),
    ),
    (
        Category.EXAM_CERTIFICATE,
        ("考试", "报名", "成绩", "证书", "准考证", "exam", "certificate", "score", "registration"),
    ),
    (
        Category.COURSE_CHANGE,
        (
            "调课",
            "换班",
            "换老师",
            "转班",
            "延期",
            "改期",
            "线上转线下",
            "线下转线上",
            "reschedule",
            "switch class",
            "change teacher",
            "change my teacher",
            "postpone",
            "extension",
            "transfer to",
        ),
    ),
    (
        Category.TECHNICAL,
        (
            "登录",
            "登不上",
            "播放",
            "卡顿",
            "闪退",
            "崩溃",
            "黑屏",
            "网络",
            "浏览器",
            "打不开",
            "报错",
            "login",
            "log in",
            "sign in",
            "playback",
            "video",
            "crash",
            "freeze",
            "browser",
            "network",
            "error",
            "app",
            "buffering",
        ),
    ),
    (
        Category.COURSE_CONTENT,
        (
            "课件",
            "讲义",
            "内容错误",
            "错别字",
            "答案错误",
            "缺少章节",
            "typo",
            "mistake in",
            "wrong answer",
            "missing chapter",
            "course material",
            "slides",
        ),
    ),
    (
        Category.LEARNING_GUIDANCE,
        (
            "学习计划",
            "学习方法",
            "作业",
            "辅导",
            "怎么学",
            "study plan",
            "homework",
            "how to learn",
            "tutoring",
            "study method",
        ),
    ),
    (
        Category.SUGGESTION,
        ("建议", "希望增加", "意见", "suggest", "suggestion", "feature request", "would be nice"),
    ),
)

# A class or exam about to happen makes a blocking problem at least high (R3.2).
SOON = (
    "今天",
    "明天",
    "今晚",
    "马上",
    "即将",
    "紧急",
    "急",
    "today",
    "tomorrow",
    "tonight",
    "urgent",
    "asap",
    "right now",
    "in an hour",
)

TEAM_OF: Mapping[Category, str] = {
    Category.TECHNICAL: "tech_support",
    Category.ACCOUNT_SECURITY: "tech_support",
    Category.COURSE_CONTENT: "course_ops",
    Category.COURSE_CHANGE: "course_ops",
    Category.PAYMENT_REFUND: "finance",
    Category.LEARNING_GUIDANCE: "learning_advisors",
    Category.EXAM_CERTIFICATE: "customer_service",
    Category.COMPLAINT: "complaints",
    Category.SUGGESTION: "customer_service",
    Category.OTHER: "customer_service",
}

PRIORITY_RANK: Mapping[Priority, int] = {
    Priority.URGENT: 0,
    Priority.HIGH: 1,
    Priority.MEDIUM: 2,
    Priority.LOW: 3,
}


def _trie(words: Iterable[str], *, end: str) -> str:
    """`words` as one regular expression shaped like a trie: at each character one branch per
    next character, so a position costs a few steps however many keywords there are. A word
    ending here is the last branch (followed by `end`), so the longest word matches."""
    rest: dict[str, list[str]] = {}
    ends = False
    for w in words:
        if w:
            rest.setdefault(w[0], []).append(w[1:])
        else:
            ends = True
    branches = [re.escape(c) + _trie(tail, end=end) for c, tail in sorted(rest.items())]
    if ends:
        branches.append(end)
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


# What triage looks for: each category's keywords, then the urgency words.
_GROUPS: tuple[tuple[str, ...], ...] = (*(words for _, words in KEYWORDS), SOON)
_SOON_GROUP = len(KEYWORDS)
_WORDS = {w for words in _GROUPS for w in words}
_ASCII = sorted(w for w in _WORDS if w.isascii())
_CHINESE = sorted(w for w in _WORDS if not w.isascii())

# Every keyword in one alternation over lower-cased text. ASCII words match whole words ("app"
# is not in "happy"); Chinese matches as is. The character class in front of the Chinese trie
# lets a position that starts no Chinese keyword fail in one step.
_CHINESE_FIRST = "".join(sorted({w[0] for w in _CHINESE}))
_KEYWORD = re.compile(
    r"\b" + _trie(_ASCII, end=r"\b") + f"|(?=[{_CHINESE_FIRST}])" + _trie(_CHINESE, end="")
)


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _also_at(longest: str) -> tuple[tuple[int, str], ...]:
    """Where `longest` is the longest keyword found at a position, each group that has a
    keyword there, with the first one of its list (as a per-group alternation would pick it):
    `longest` itself or a keyword it starts with, whole-word for ASCII."""
    found = []
    for group, words in enumerate(_GROUPS):
        for w in words:
            if longest.startswith(w) and (
                len(w) == len(longest)
                or not w.isascii()
                or _is_word(w[-1]) != _is_word(longest[len(w)])
            ):
                found.append((group, w))
                break
    return tuple(found)


_AT = {w: _also_at(w) for w in _WORDS}


@dataclass(frozen=True, slots=True)
class Triage:
    category: Category
    priority: Priority
    team: str
    matched: tuple[str, ...]


def triage(texts: Sequence[tuple[str, str]]) -> list[Triage]:
    """Triage a batch of (subject, description): category by the most keyword hits (Chinese or
    English), priority by nature and urgency.

    One scan over the whole batch finds every position where a keyword starts (overlapping ones
    too: "登录" inside "异地登录"); each category then counts its hits left to right without
    overlap, as one alternation per category would, and on equal counts the earlier category
    wins. A batch at once, so that a learned classifier can later take the same texts as one
    matrix.
    """
    lowered = [f"{subject}\n{description}".lower() for subject, description in texts]
    # Tickets are joined by a character no keyword contains and that is no word character.
    joined = "\x00".join(lowered)
    ends = list(itertools.accumulate(len(t) + 1 for t in lowered))
    hits: list[dict[int, list[str]]] = [{} for _ in texts]  # per ticket, group -> its hits
    free: list[dict[int, int]] = [{} for _ in texts]  # per ticket, group -> next hit from
    ticket = 0
    search = _KEYWORD.search
    found = search(joined)
    while found:
        at = found.start()
        while at >= ends[ticket]:
            ticket += 1
        for group, word in _AT[found.group()]:
            if at >= free[ticket].get(group, 0):
                free[ticket][group] = at + len(word)
                hits[ticket].setdefault(group, []).append(word)
        found = search(joined, at + 1)
    return [_decide(groups) for groups in hits]


def _decide(hits: Mapping[int, list[str]]) -> Triage:
    """The category with the most hits (the earlier one on a tie), else OTHER."""
    ranked = sorted((-len(words), group) for group, words in hits.items() if group != _SOON_GROUP)
    best, words = (
        (KEYWORDS[ranked[0][1]][0], hits[ranked[0][1]]) if ranked else (Category.OTHER, [])
    )
    return Triage(
        category=best,
        priority=priority_of(best, soon=_SOON_GROUP in hits),
        team=TEAM_OF[best],
        matched=tuple(dict.fromkeys(words)),
    )


# Categories whose problem can block a class or an exam; urgency words raise only these.
BLOCKING = frozenset(Category) - {Category.SUGGESTION, Category.OTHER}


def priority_of(category: Category, *, soon: bool) -> Priority:
    """Account security is urgent (R3.2: solved within 30 minutes); complaints, and problems
    that block a class or exam happening soon, are at least high."""
    if category is Category.ACCOUNT_SECURITY:
        return Priority.URGENT
    if category is Category.COMPLAINT or (soon and category in BLOCKING):
        return Priority.HIGH
    if category in (Category.SUGGESTION, Category.OTHER):
        return Priority.LOW
    return Priority.MEDIUM


def due_times(
    priority: Priority,
    start: datetime,
    *,
    first_response_minutes: Mapping[str, int],
    resolution_minutes: Mapping[str, int],
) -> tuple[datetime, datetime]:
    """First-response and resolution deadlines from the per-priority targets (R5.1)."""
    return (
        start + timedelta(minutes=first_response_minutes[priority]),
        start + timedelta(minutes=resolution_minutes[priority]),
    )


@dataclass(frozen=True, slots=True)
class AgentSkills:
    agent_id: str
    role: Role
    teams: frozenset[str]
    languages: frozenset[str]


def candidates(
    agents: Sequence[AgentSkills],
    *,
    team: str,
    language: str,
    supervisor: bool = False,
    preferred: str | None = None,
) -> list[str]:
    """Agents who may take the ticket, `preferred` first.

    Skill is team plus language; when nobody in the team speaks the language the team still
    takes it rather than leave it unowned. A supervisor ticket goes to supervisors (or admins)
    of the team, else to any supervisor.
    """
    pool = [a for a in agents if team in a.teams]
    if supervisor:
        pool = [a for a in pool if a.role is not Role.AGENT] or [
            a for a in agents if a.role is not Role.AGENT
        ]
    speakers = [a for a in pool if language in a.languages]
    ids = [a.agent_id for a in (speakers or pool)]
    if preferred in ids:
        ids.remove(preferred)
        ids.insert(0, preferred)
    return ids


def held_by_ordinary_agents(held: Mapping[T, str], roles: Mapping[str, Role]) -> list[T]:
    """Of the tickets `held` (ticket -> agent), those an escalation must move to a supervisor:
    held by an agent, or by someone routing no longer knows."""
    return [t for t, agent in held.items() if roles.get(agent, Role.AGENT) is Role.AGENT]


Pair = tuple[str, str]  # (ticket, agent)


@dataclass(frozen=True, slots=True)
class Drift:
    """What a reconciliation changes in Redis, and what it only notes for next time."""

    free: list[Pair]  # slots Redis holds that no committed assignment holds, seen twice
    restore: list[Pair]  # committed assignments Redis does not count
    suspects: dict[Pair, int]  # slots held without a committed assignment, seen once (claim)


def drift(
    *,
    counted: Iterable[Pair],
    indexed: Mapping[str, str],
    claims: Mapping[str, int],
    committed: Iterable[Pair],
    suspects: Mapping[Pair, int],
    rebuild: bool,
) -> Drift:
    """Compare Redis (`counted` in load sets, `indexed` by ticket) with committed Postgres.

    Taken while no routing transaction is in flight (see capacity.py), a committed assignment
    Redis does not count can only be a loss: it is restored at once, since an undercount could
    let an agent take more than capacity. A slot Redis holds without a committed assignment may
    still be the release of a transaction that just committed, about to free it: it is freed
    only when seen with the same claim by the previous reconciliation too. A rebuild (Redis
    came back empty) trusts Postgres alone.
    """
    truth = set(committed)
    counted = set(counted)
    held = counted | {(t, a) for t, a in indexed.items()}
    restore = sorted(p for p in truth if p not in counted or indexed.get(p[0]) != p[1])
    extra = {p: claims.get(p[0], 0) for p in held - truth}
    if rebuild:
        return Drift(free=sorted(extra), restore=restore, suspects={})
    free = sorted(p for p, c in extra.items() if suspects.get(p) == c)
    return Drift(
        free=free, restore=restore, suspects={p: c for p, c in extra.items() if p not in free}
    )


def over_capacity(committed: Iterable[Pair], capacity: Mapping[str, int]) -> dict[str, int]:
    """Agents holding more committed assignments than their capacity, with how many."""
    held: dict[str, int] = {}
    for _, agent in committed:
        held[agent] = held.get(agent, 0) + 1
    return {a: n for a, n in held.items() if n > capacity.get(a, 0)}
