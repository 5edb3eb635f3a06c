"""The learner's message about their complaint case (desk's `case.concluded`): the finding and
the remedies in words, beside the agent's own account (`body`)."""

from typing import Any

import asyncpg

from services.notify import repo
from shared.events import CaseConcluded, CaseRemedy, Envelope, NotificationKind

FINDING_WORDS = {
    "zh": {"upheld": "投诉属实", "partly_upheld": "投诉部分属实", "not_upheld": "投诉不属实"},
    "en": {
        "upheld": "your complaint is upheld",
        "partly_upheld": "your complaint is partly upheld",
        "not_upheld": "your complaint is not upheld",
    },
}


def remedy_words(r: CaseRemedy, language: str) -> str:
    """One remedy as the learner reads it."""
    zh = language == "zh"
    course = f" ({r.course_id})" if r.course_id else ""
    match r.type:
        case "refund":
            return f"退款 {r.amount} {r.currency}" if zh else f"a refund of {r.amount} {r.currency}"
        case "extension":
            return (
                f"课程延期 {r.days} 天{course}" if zh else f"{r.days} more days of access{course}"
            )
        case "lessons":
            return (
                f"补课 {r.lessons} 节{course}"
                if zh
                else f"{r.lessons} supplementary lessons{course}"
            )
        case "coupon":
            return (
                f"优惠券 {r.amount} {r.currency}"
                if zh
                else f"a coupon worth {r.amount} {r.currency}"
            )
        case "points":
            return f"积分 {r.points}" if zh else f"{r.points} points"
        case "replacement":
            return f"更换服务：{r.description}" if zh else f"a replacement: {r.description}"
        case _:
            return "致歉" if zh else "our apology"


def payload(c: CaseConcluded) -> dict[str, Any]:
    """The template values, in both languages: the recipient's language is chosen at sending."""
    values: dict[str, Any] = {"body": c.outcome, "portal_url": c.portal_url}
    for lang in ("zh", "en"):
        values[f"finding_{lang}"] = FINDING_WORDS[lang][c.finding]
        values[f"remedies_{lang}"] = ("；" if lang == "zh" else "; ").join(
            remedy_words(r, lang) for r in c.remedies
        )
    return values


async def on_case_concluded(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """One message per case (keyed by the case), so a redelivery sends nothing twice."""
    await repo.add_deliveries(
        conn,
        [
            repo.NewDelivery(
                delivery_key=f"{NotificationKind.CASE_OUTCOME}:{e.data.case_id}",
                ticket_id=e.data.ticket_id,
                kind=NotificationKind.CASE_OUTCOME,
                payload=payload(e.data),
            )
            for e in events
        ],
    )
