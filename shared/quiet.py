"""Collapse repeated log lines: an outage must not bury the logs under one message a millisecond.

While the broker is away, aiokafka logs the same connection error for every request it tries
(thousands a minute). The first of a kind goes out at once; repeats within `window` seconds are
counted, and the next one after the window says how many were held back.
"""

import logging
import time


class RepeatFilter(logging.Filter):
    """Let through one record per (logger, level, message template) per window."""

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self._window = window
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self._window:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1] and isinstance(record.msg, str):
            record.msg = f"{record.msg} (and {seen[1]} more like it in the last {self._window:g} s)"
        self._last[key] = (now, 0)
        if len(self._last) > 10_000:  # bounded: forget the oldest half
            for k, _ in sorted(self._last.items(), key=lambda kv: kv[1][0])[:5_000]:
                del self._last[k]
        return True
