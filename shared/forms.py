"""Reading an HTML form strictly: URL-encoded UTF-8 or refused, never silently mangled.

Starlette's parser replaces invalid UTF-8 (and reads raw bytes as Latin-1), so a learner's
comment could be stored as something they did not write. Pages read their forms here and
answer a refusal with a page of their own.
"""

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 50


@dataclass(frozen=True)
class FormRefused(Exception):
    """The body is not a form this page can read; `status` is the HTTP answer."""

    status: int
    reason: str


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's fields (a repeated name keeps its last value)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise FormRefused(415, f"the form must be sent as {FORM_TYPE}")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"),  # percent-encoded on the wire, so ASCII
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise FormRefused(400, "the form is not URL-encoded UTF-8") from exc
    except ValueError as exc:
        raise FormRefused(400, f"the form has more than {MAX_FIELDS} fields") from exc
    return dict(pairs)
