"""The error answers an HTTP route can give, as OpenAPI documents them.

Every route lists, with `responses=problems(...)`, each status it can answer besides its
success, so that a client generated from the document knows them all. Bodies are FastAPI's
`{"detail": ...}`; 422 keeps FastAPI's own list of field problems.
"""

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """Why a request was refused, in words."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class FieldProblems(BaseModel):
    """Each field that was refused, where it is and why."""

    detail: list[FieldProblem]


_DESCRIPTIONS = {
    400: "The body is not UTF-8 or not parseable",
    401: "Missing or unknown bearer token",
    403: "The caller's role or assignment does not allow this",
    404: "No such resource",
    409: "The resource is not in a state where this makes sense",
    413: "The body is larger than CARELOOP_HTTP_MAX_BODY_BYTES",
    415: "The body is not in a media type this route reads",
    422: "A field is missing or invalid; each is named with its problem",
    429: "Too many requests; retry after Retry-After seconds",
    503: "A dependency (database, cache, broker) is unavailable; retry after Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer each of `codes`."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "model": FieldProblems if code == 422 else Problem,
            "description": _DESCRIPTIONS[code],
        }
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


def pages(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a page route that answers each of `codes` with an HTML page."""
    return {
        code: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": _DESCRIPTIONS[code],
        }
        for code in codes
    }
