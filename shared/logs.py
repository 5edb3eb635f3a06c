"""Structured JSON logging with personal data (e-mail, phone, ID numbers) masked everywhere."""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# An escaped character as repr() and bytes show it: `\\xe7`, `\\u7528`, `\\U0001f600`.
_ESCAPE = r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"
# Local part and domain in any script (\w is Unicode): 用户@例子.中国, user@bücher.de, with the
# full-width @ and the dots IDNA reads as dots. The lookbehind starts a local part only where
# one can start, so a long run of letters is scanned once, not once per letter.
_LOCAL_CHAR = r"[\w!#$%&'*+/=?^`{|}~.-]"
_LABEL = rf"(?:{_ESCAPE}|[\w-])+"
_EMAIL = re.compile(
    rf"(?<![\w!#$%&'*+/=?^`{{|}}~.\\-])((?:{_ESCAPE}|{_LOCAL_CHAR})+)[@\uff20]"
    rf"({_LABEL}(?:[.\u3002\uff0e\uff61]{_LABEL})+)"
)
# Chinese resident ID numbers, in ASCII or full-width digits: 18 characters, the last a
# check digit or X, or the older 15 digits.
_ID_NUMBER = re.compile(r"(?<!\d)(?:\d{17}[\dXxＸｘ]|\d{15})(?!\d)")
# Digits of any script (\d is Unicode: full-width １３８ too), grouped by spaces (also the
# ideographic one), dashes of every width and parentheses, after an optional + or ＋. The
# boundaries name Latin letters only: Chinese text may touch a number ("请拨打13812345678").
_PHONE_SEPARATOR = r"[\s\-\u2010-\u2015\uff0d()\uff08\uff09]"
_NOT_BESIDE_A_PHONE = r"A-Za-z0-9_\-\uff21-\uff3a\uff41-\uff5a"
_PHONE = re.compile(
    rf"(?<![{_NOT_BESIDE_A_PHONE}])[+\uff0b]?[(\uff08]?\d(?:\d|{_PHONE_SEPARATOR}){{5,}}"
    rf"\d(\d{{2}})(?![{_NOT_BESIDE_A_PHONE}])"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _email(match: re.Match[str]) -> str:
    local = match.group(1)
    first = "" if local.startswith("\\") else local[0]
    return f"{first}***@{match.group(2)}"


def _phone(match: re.Match[str]) -> str:
    return match.group(0) if _UUID.fullmatch(match.group(0)) else f"***{match.group(1)}"


def mask(text: str) -> str:
    """Mask e-mail addresses, ID numbers and phone numbers in `text`, whatever their script:
    an address keeps its first character and its domain, a phone its last two digits."""
    text = _EMAIL.sub(_email, text)
    text = _ID_NUMBER.sub("[id-number]", text)
    return _PHONE.sub(_phone, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: _mask_value(v) for k, v in event_dict.items()}


def configure(level: str = "INFO", *, service: str) -> None:
    """JSON to stdout for structlog and for every stdlib logger (uvicorn, faststream, aiokafka)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_processor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)
