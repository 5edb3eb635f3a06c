"""One validation for every text careloop is handed: only what PostgreSQL, SMTP and JSON keep.

PostgreSQL refuses NUL in text, UTF-8 cannot hold a lone surrogate, and control characters in
a name or subject end up in mail headers and logs. Every entry point (HTTP bodies, headers,
paths and queries, Kafka messages) validates with these types, so a value that a later step
would refuse is refused where it came in, with the field and the reason.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# C0 controls but tab, line feed and carriage return; DEL; C1 controls; lone surrogates;
# the two non-characters every plane ends with in the BMP.
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# A one-line value (a name, a subject, an id) also may not break a line or a header.
_FORBIDDEN_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _describe(char: str) -> str:
    if char == "\x00":
        return "a NUL character"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X})"
    if char in "\r\n\u2028\u2029":
        return "a line break"
    return f"a control character (U+{ord(char):04X})"


def problem(value: str, *, multiline: bool) -> str | None:
    """What makes `value` unstorable, or None when it is fine."""
    found = (_FORBIDDEN_IN_TEXT if multiline else _FORBIDDEN_IN_LINE).search(value)
    if found is None:
        return None
    return f"contains {_describe(found.group())} at position {found.start()}"


def check_text(value: str) -> str:
    """Many lines of prose (a description, a reply): tabs and line breaks are fine."""
    if (why := problem(value, multiline=True)) is not None:
        raise ValueError(why)
    return value


def check_line(value: str) -> str:
    """One line (a name, a subject, an id): no line breaks or tabs either."""
    if (why := problem(value, multiline=False)) is not None:
        raise ValueError(why)
    return value


Text = Annotated[str, AfterValidator(check_text)]
Line = Annotated[str, AfterValidator(check_line)]
# A token in a link careloop sent (`secrets.token_urlsafe`): anything else cannot be one.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def detect_language(*texts: str) -> str:
    """`zh` when any of the texts holds Chinese characters, else `en`. An ASCII text (most of
    them) is told at once: CPython knows a string is ASCII without looking at it."""
    return "zh" if any(not t.isascii() and _CJK.search(t) for t in texts) else "en"
