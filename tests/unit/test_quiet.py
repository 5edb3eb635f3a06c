"""Repeated log lines are collapsed during an outage."""

import logging

from shared.quiet import RepeatFilter


def _record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", level, __file__, 1, msg, ("node 1",), None)


def test_repeats_within_the_window_are_held_back_and_counted_on_the_next_one_out() -> None:
    quiet = RepeatFilter(window=0.0)
    held = RepeatFilter(window=3600)
    assert held.filter(_record("Unable connect to %s"))
    assert not any(held.filter(_record("Unable connect to %s")) for _ in range(50))
    assert quiet.filter(_record("Unable connect to %s"))
    second = _record("Unable connect to %s")
    assert quiet.filter(second)


def test_different_messages_and_info_lines_are_never_held_back() -> None:
    held = RepeatFilter(window=3600)
    assert held.filter(_record("one %s"))
    assert held.filter(_record("two %s"))
    assert all(held.filter(_record("progress %s", logging.INFO)) for _ in range(5))


def test_the_line_after_the_window_says_how_many_were_held_back() -> None:
    f = RepeatFilter(window=3600)
    f.filter(_record("lost %s"))
    for _ in range(7):
        f.filter(_record("lost %s"))
    f._last = {k: (v[0] - 7200, v[1]) for k, v in f._last.items()}  # the window has passed
    late = _record("lost %s")
    assert f.filter(late)
    assert "and 7 more like it" in late.getMessage()
