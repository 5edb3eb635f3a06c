"""Agents' triage corrections become corpus lines the triage trainer reads."""

from pathlib import Path

import asyncpg
import msgspec

from services.desk import corrections, handlers
from services.desk.domain import Caller
from services.routing.triage import corpus
from shared.agents import Role
from shared.events import Category, Priority
from tests.integration.test_desk_events import (
    Deliver,
    routed,
    submitted,
)
from tests.integration.test_desk_events import deliver as deliver
from tests.integration.test_desk_events import desk_pool as desk_pool

SAM = Caller(agent_id="sam", name="Sam", role=Role.SUPERVISOR)


async def test_a_corrected_ticket_exports_as_a_corpus_line_the_trainer_reads(
    deliver: Deliver, desk_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    s = submitted()
    await deliver(s)
    await deliver(routed(s.data.ticket_id, "ana"))
    async with desk_pool.acquire() as conn, conn.transaction():
        await handlers.retriage(
            conn,
            ticket_id=s.data.ticket_id,
            agent=SAM,
            category=Category.PAYMENT_REFUND,
            priority=Priority.MEDIUM,
            reason="asks for the money back",
        )
    async with desk_pool.acquire() as conn:
        lines = await corrections.corrections(conn, since=None)

    [line] = [x for x in lines if x["description"] == s.data.description]
    assert (line["category"], line["priority"], line["channel"], line["language"]) == (
        "payment_refund",
        "medium",
        "web",
        "en",
    )
    assert line["reason"] == "agent correction by sam: asks for the money back"
    written = tmp_path / "corrections.jsonl"
    written.write_text(msgspec.json.encode(line).decode() + "\n", encoding="utf-8")
    [example] = corpus.read([written])
    assert (example.category, example.tier) == ("payment_refund", "standard")


def test_a_chinese_text_with_english_words_is_mixed() -> None:
    assert corrections.language_of("我的 account 被 locked 了") == "mixed"
    assert corrections.language_of("账号被盗了") == "zh"
    assert corrections.language_of("Cannot log in") == "en"
