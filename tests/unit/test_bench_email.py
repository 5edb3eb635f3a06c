"""The benchmark's e-mail phase, pure parts: its mails are what intake reads as the tickets the
bench follows, and its comparison with the Kafka burst."""

from datetime import UTC, datetime

import pytest

from bench.email import KINDS, mail
from bench.report import comparison_markdown, email_comparison, email_section
from services.intake.channels.email import read
from shared.events import Channel, TicketSubmitted

RECEIVED = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def _read(i: int) -> TicketSubmitted:
    m = mail("run1", i)
    got = read(m.raw, max_bytes=10 * 1024 * 1024, received_at=RECEIVED, envelope_sender=m.sender)
    assert isinstance(got, TicketSubmitted), got
    return got


def test_each_mail_is_the_ticket_the_bench_follows_from_its_own_sender() -> None:
    mails = [mail("run1", i) for i in range(8)]

    tickets = [_read(i) for i in range(8)]

    assert [m.kind for m in mails] == [*KINDS, *KINDS]
    assert [str(t.ticket_id).encode() for t in tickets] == [m.ticket for m in mails]
    assert len({m.ticket for m in mails}) == 8
    assert [t.learner.email for t in tickets] == [m.sender for m in mails]
    assert {t.channel for t in tickets} == {Channel.EMAIL}
    assert all(t.message_id is not None and t.reply_to is None for t in tickets)
    assert mail("run1", 3).ticket == mails[3].ticket  # the same Message-ID each time
    assert mail("run2", 3).ticket != mails[3].ticket


def test_the_foxmail_mail_is_gbk_with_a_screenshot_and_reads_as_chinese() -> None:
    m = mail("run1", 1)

    ticket = _read(1)

    assert b'charset="gb2312"' in m.raw and b"=?gb2312?B?" in m.raw
    assert ticket.learner.name == "李娜"
    assert ticket.subject == "重复扣款，申请退款"
    assert "支付宝被扣了两次款" in ticket.description
    assert [(a.name, a.content_type) for a in ticket.attachments] == [("扣款截图.png", "image/png")]
    assert ticket.attachments[0].size > 24 * 1024
    assert ticket.language == "zh"


def test_the_html_only_and_the_reply_lose_their_markup_and_their_history() -> None:
    html, reply = _read(2), _read(3)

    assert html.description.startswith("Hello,\n\nI need to move my one-to-one")
    assert "<p>" not in html.description and "Sent:" not in html.description
    assert reply.subject == "Re: Your password has been reset"
    assert "wrote:" not in reply.description and ">" not in reply.description
    assert reply.description.endswith("Sophie Lin")


def _run(tickets: int, *, accepted: float | None, created: float, cpu: dict[str, float]) -> dict:
    stages = {
        "created": {"per_second": created, "p50_ms": 100.0, "p99_ms": 400.0},
        "assigned": {"per_second": created / 2},
        "confirmed": {"per_second": created / 4},
    }
    if accepted is not None:
        stages["accepted"] = {"per_second": accepted}
    return {
        "tickets": tickets,
        "submit_seconds": 0.5,
        "stages": stages,
        "cpu_ms_per_ticket": {"to_assigned": cpu, "whole": {k: 2 * v for k, v in cpu.items()}},
    }


def _figures(kafka_sizes: tuple[int, ...]) -> dict:
    email = _run(2_000, accepted=400, created=380, cpu={"intake": 2.0, "desk": 0.5})
    email |= {
        "connections": 8,
        "submit_seconds": 5.0,
        "mail_bytes": 2_000 * 9 * 1024,
        "kinds": {"utf8_plain": 500, "gbk_foxmail": 500, "html_only": 500, "quoted_reply": 500},
        "refused": {},
        "wal_bytes_per_ticket": {"to_assigned": 8000.0, "whole": 9000.0},
        "bench_cpu_ms_per_ticket": 0.5,
        "bench_cpu_cores": 0.1,
    }
    email["stages"]["accepted"] |= {"count": 2_000, "expected": 2_000, "complete": True}
    for name in ("created", "assigned", "confirmed"):
        email["stages"][name] |= {"count": 2_000, "expected": 2_000, "complete": True}
    bursts = [
        _run(n, accepted=None, created=1_900, cpu={"intake": 0.1, "desk": 0.25})
        for n in kafka_sizes
    ]
    return {"email": email, "bursts": bursts}


def test_the_email_path_is_set_next_to_the_kafka_burst_of_its_size() -> None:
    got = email_comparison(_figures((200, 2_000, 20_000)))

    assert got is not None
    assert got["kafka_tickets"] == 2_000
    rows = {r["figure"]: r for r in got["rows"]}
    accepted = rows["accepted/s (e-mail: 250 from the gateway; Kafka: acked by the broker)"]
    assert accepted["email"] == 400 and accepted["kafka"] == 4_000  # 2,000 acked in 0.5 s
    assert accepted["ratio"] == pytest.approx(0.1)
    assert rows["created/s"]["ratio"] == pytest.approx(0.2)
    assert rows["CPU per ticket up to assigned, all processes"]["ratio"] == pytest.approx(
        2.5 / 0.35
    )
    assert rows["CPU per ticket, whole burst, all processes"]["email"] == pytest.approx(5.0)
    assert rows["CPU per ticket, whole burst: intake"]["ratio"] == pytest.approx(20)
    assert rows["CPU per ticket, whole burst: intake"]["email"] == pytest.approx(4.0)
    # Processes are listed by the e-mail path's CPU, largest first.
    assert [r["figure"] for r in got["rows"][-2:]] == [
        "CPU per ticket, whole burst: intake",
        "CPU per ticket, whole burst: desk",
    ]


def test_without_a_burst_of_its_size_the_nearest_is_used_and_named() -> None:
    figures = _figures((200, 20_000))

    comparison = email_comparison(figures)
    section = email_section(figures["email"], comparison)

    assert comparison is not None and comparison["kafka_tickets"] == 200
    assert "Kafka burst of 200 (careloop.inbound.v1) — no Kafka burst of 2,000" in section
    assert email_comparison({"email": figures["email"], "bursts": []}) is None
    assert email_comparison({"bursts": figures["bursts"]}) is None


def test_the_comparison_table_has_a_ratio_column_and_small_ratios_keep_their_digits() -> None:
    figures = _figures((2_000,))
    figures["bursts"][0]["submit_seconds"] = 0.02  # 100,000 acked/s

    table = comparison_markdown(email_comparison(figures) or {})
    lines = table.splitlines()

    assert lines[0] == "| figure | e-mail (2,000 mails) | Kafka (2,000 burst) | e-mail ÷ Kafka |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2].endswith("| 400 | 100,000 | 0.004 |")
    assert "| p99 submission → created (ms) | 400.0 | 400.0 | 1.00 |" in lines
