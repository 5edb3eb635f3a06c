"""Request parameters shared by the services' APIs. Query parameters as strict as JSON:
`true`/`false` for a boolean, digits for an integer.

FastAPI parses query strings leniently (`yes`, `on` and `1` are true, `1.0` is 1); a client
that sends those means something the API does not promise, so it is told rather than
guessed at. The OpenAPI types stay boolean and integer.
"""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _bool(value: Any) -> Any:
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true" if isinstance(value, str) else value


def _int(value: Any) -> Any:
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ValueError("must be a whole number written in digits")
    return value


QueryBool = Annotated[bool, BeforeValidator(_bool)]
# Put it after the parameter's Query(ge=…, le=…): before them, OpenAPI loses the bounds.
DIGITS = BeforeValidator(_int)

# A client's `Idempotency-Key` header: printable ASCII, as the header allows.
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")]
