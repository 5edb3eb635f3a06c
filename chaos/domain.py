"""Pure parts of the fault suite: what a scenario's observations add up to, the poison and fuzz
inputs it sends, and how the summary reads. No I/O here, so all of it is unit-tested."""

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

MARKER = re.compile(r"\[chaos (?P<run>[a-z0-9-]+):(?P<index>\d+)\]")
SUBJECTS = (
    ("The video player freezes", "Playback stops in the browser after a minute"),
    ("申请退款", "课程重复扣费，请退款"),
    ("Change my class time", "I need to reschedule my lessons to the evening"),
    ("账号异常登录", "有陌生设备登录我的账号，密码被改了"),
)
ONE_MIB = 1024 * 1024


def marker(run: str, index: int) -> str:
    """The tag a submission carries in its subject, so its ticket can be found again."""
    return f"[chaos {run}:{index}]"


def parse_marker(subject: str, run: str) -> int | None:
    """The submission index tagged in `subject`, when it belongs to `run`."""
    m = MARKER.search(subject)
    return int(m["index"]) if m and m["run"] == run else None


def submission(run: str, index: int, *, source: str | None = None) -> dict[str, str]:
    """One submission body: the web form's shape, or the inbound topic's when `source` is set."""
    subject, description = SUBJECTS[index % len(SUBJECTS)]
    body = {
        "name": f"Learner {index}",
        "email": f"chaos-{run}-{index}@example.com",
        "subject": f"{subject} {marker(run, index)}",
        "description": description,
    }
    if source is not None:
        body |= {"source": source, "external_id": f"chaos-{run}-{index}"}
    return body


@dataclass(frozen=True, slots=True)
class Accepted:
    """A submission careloop said it kept: a 202, or the broker's ack on careloop.inbound.v1."""

    index: int
    at: float  # wall clock, seconds since the epoch
    channel: str  # "http" or "kafka"


@dataclass(frozen=True, slots=True)
class Ticket:
    ticket_id: str
    number: str
    index: int
    assigned_at: float | None  # first assignment, wall clock; None when never assigned
    created_at: float = 0.0  # when desk stored it, wall clock


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scenario's line in the summary."""

    scenario: str
    sent: int
    accepted: int
    lost: int  # accepted, but no ticket
    broker_lost: int  # accepted before the in-memory broker restarted, and gone with it
    duplicated: int  # extra tickets for one submission plus extra confirmations for one ticket
    # (a confirmation is one Message-ID: a second message about the same ticket)
    over_capacity: int  # the most any agent's live load exceeded their capacity
    stalled: int  # tickets never assigned
    unconfirmed: int  # tickets whose learner got no confirmation e-mail
    server_errors: int  # HTTP answers >= 500 other than 503
    recovery_seconds: float | None  # fault end to the first ticket assigned after it
    notes: tuple[str, ...] = field(default=())
    error: str | None = None  # the scenario itself could not run to its end
    # copies of one confirmation (same Message-ID) that a kill between the SMTP server's 250 and
    # the "sent" mark re-sent: the documented window SMTP leaves, shown, not failed
    resent: int = 0

    @property
    def failed(self) -> bool:
        return bool(
            self.error
            or self.lost
            or self.duplicated
            or self.over_capacity
            or self.stalled
            or self.unconfirmed
            or self.server_errors
        )


def tally(
    *,
    scenario: str,
    sent: int,
    accepted: Sequence[Accepted],
    tickets: Sequence[Ticket],
    confirmations: Mapping[str, int],
    over_capacity: int,
    server_errors: int,
    fault_end: float,
    broker_down_at: float | None = None,
    resent: int = 0,
    notes: Iterable[str] = (),
) -> Outcome:
    """Add up what one scenario saw.

    When the broker went down (`broker_down_at`), everything it held then was lost with it (it
    keeps records in memory only): a submission accepted before that without a ticket, and a
    ticket stored before that never assigned or never confirmed (its event was on the broker),
    count as the broker's loss, apart from what careloop lost.
    """
    by_index: dict[int, set[str]] = {}
    for t in tickets:
        by_index.setdefault(t.index, set()).add(t.ticket_id)
    first: dict[int, Accepted] = {}
    for a in accepted:
        if a.index not in first or a.at < first[a.index].at:
            first[a.index] = a

    def before_broker_went(at: float) -> bool:
        return broker_down_at is not None and at < broker_down_at

    missing = [first[i] for i in first if i not in by_index]
    lost = [a for a in missing if not before_broker_went(a.at)]
    numbers = {t.number for t in tickets}
    unfinished = [
        t for t in tickets if t.assigned_at is None or confirmations.get(t.number, 0) == 0
    ]
    dropped = {t.ticket_id for t in unfinished if before_broker_went(t.created_at)}
    extra_tickets = sum(len(ids) - 1 for ids in by_index.values())
    extra_mails = sum(n - 1 for number, n in confirmations.items() if number in numbers and n > 1)
    after = [
        t.assigned_at for t in tickets if t.assigned_at is not None and t.assigned_at >= fault_end
    ]
    explained = list(notes)
    if lost:
        channels = Counter(a.channel for a in lost)
        times = sorted(a.at - fault_end for a in lost)
        explained.append(
            "lost: "
            + ", ".join(f"{n} {c}" for c, n in sorted(channels.items()))
            + f", accepted {times[0]:+.1f} s to {times[-1]:+.1f} s from the fault's end"
        )
    return Outcome(
        scenario=scenario,
        sent=sent,
        accepted=len(first),
        lost=len(lost),
        broker_lost=len(missing) - len(lost) + len(dropped),
        duplicated=extra_tickets + extra_mails,
        over_capacity=over_capacity,
        stalled=sum(1 for t in tickets if t.assigned_at is None and t.ticket_id not in dropped),
        unconfirmed=sum(
            1 for t in tickets if confirmations.get(t.number, 0) == 0 and t.ticket_id not in dropped
        ),
        server_errors=server_errors,
        recovery_seconds=min(after) - fault_end if after else None,
        notes=tuple(explained),
        resent=resent,
    )


def broken(scenario: str, error: str) -> Outcome:
    """The line of a scenario that could not run to its end: failed, with nothing counted."""
    return Outcome(scenario, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, error=error)


def excess_load(loads: Mapping[str, int], capacities: Mapping[str, int]) -> int:
    """How far the fullest agent is above capacity (0 when nobody is)."""
    return max((loads.get(a, 0) - cap for a, cap in capacities.items()), default=0) if loads else 0


Headers = Iterable[tuple[str | None, str | None, str | None]]


def confirmations_per_ticket(headers: Headers) -> Counter[str]:
    """Distinct confirmations per ticket number, from (X-Careloop-Kind, X-Careloop-Ticket,
    Message-ID): copies of one message count once (see `resent_confirmations`)."""
    distinct = {
        (number, message_id)
        for kind, number, message_id in headers
        if kind == "confirmation" and number
    }
    return Counter(number for number, _ in distinct)


def resent_confirmations(headers: Headers) -> int:
    """Copies of a confirmation beyond the first, with the same Message-ID."""
    copies = Counter(
        (number, message_id)
        for kind, number, message_id in headers
        if kind == "confirmation" and number
    )
    return sum(n - 1 for n in copies.values())


def exit_code(outcomes: Sequence[Outcome]) -> int:
    return 1 if any(o.failed for o in outcomes) else 0


@dataclass(frozen=True, slots=True)
class Poison:
    """One record no consumer can use; `value` None is a tombstone."""

    name: str
    value: bytes | None
    key: bytes | None = b"poison"


def poison_records(run: str) -> list[Poison]:
    """What a careless or hostile producer can put on a topic careloop consumes."""
    valid = submission(run, 0, source="chaos")
    return [
        Poison("tombstone", None),
        Poison("not-json", b"\x00\xff this is not json"),
        Poison("invalid-utf8", b'{"name": "\xff\xfe"}'),
        Poison("json-array", b"[1, 2, 3]"),
        Poison("wrong-types", json.dumps({**valid, "name": 42, "email": ["x"]}).encode()),
        Poison("unknown-field", json.dumps({**valid, "admin": True}).encode()),
        Poison("nul-in-text", json.dumps({**valid, "description": "a\u0000b"}).encode()),
        Poison(
            "lone-surrogate",
            json.dumps({**valid, "subject": "x"}).replace('"x"', '"\\ud800"').encode(),
        ),
        Poison("no-key", json.dumps({**valid, "external_id": 7}).encode(), key=None),
        Poison(
            "over-1-MiB",
            json.dumps({**valid, "description": "x" * (ONE_MIB + ONE_MIB // 2)}).encode(),
        ),
    ]


NASTY = (
    "\u0000",
    "\ud800",
    "\udfff",
    "\u202e",
    "\r\n",
    "\x1b[31m",
    "\ufeff",
    "'; DROP TABLE tickets; --",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "账号",
    "",
    " ",
)


def nasty_text(rng: random.Random, *, max_len: int = 300, huge: bool = False) -> str:
    """A string a validator has to think about: control characters, lone surrogates, scripts,
    injections; with `huge`, sometimes far longer than any field allows."""
    if huge and rng.random() < 0.05:
        return rng.choice("x账\u0000") * rng.choice((20_001, 300_000))
    parts = [rng.choice(NASTY) for _ in range(rng.randint(1, 4))]
    parts += ["".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(0, 12)))]
    rng.shuffle(parts)
    return "".join(parts)[:max_len]


def nasty_value(rng: random.Random) -> object:
    """A JSON value of any type, mostly strings."""
    choice = rng.random()
    if choice < 0.6:
        return nasty_text(rng, huge=True)
    return rng.choice(
        (None, True, 0, -1, 2**63, 1e308, [], {}, ["x"], {"a": nasty_text(rng)}, "1", 3.5)
    )


def to_json(body: object) -> bytes:
    """JSON as a client would send it: lone surrogates travel as \\ud800 escapes."""
    return json.dumps(body, ensure_ascii=True).encode()


def nasty_submission(run: str, index: int, rng: random.Random) -> dict[str, object]:
    """A web-form submission whose name and description are hostile but whose subject carries
    the marker: whatever intake answers 202 to must become a ticket."""
    body: dict[str, object] = dict(submission(run, index))
    body["name"] = nasty_text(rng, max_len=100) or "x"
    body["description"] = nasty_text(rng) or "x"
    return body


@dataclass(frozen=True, slots=True)
class Operation:
    """One route from a service's OpenAPI document."""

    method: str
    path: str  # with {name} placeholders
    query: tuple[str, ...]
    body_fields: tuple[str, ...] | None  # None: the route takes no body
    content_type: str = "application/json"


def operations(openapi: Mapping[str, Any]) -> list[Operation]:
    """Every route in an OpenAPI document, with its query parameters and body fields."""
    ops = []
    schemas = openapi.get("components", {}).get("schemas", {})
    for path, methods in openapi.get("paths", {}).items():
        for method, spec in methods.items():
            query = tuple(p["name"] for p in spec.get("parameters", []) if p.get("in") == "query")
            content = spec.get("requestBody", {}).get("content", {})
            fields: tuple[str, ...] | None = None
            content_type = "application/json"
            if content:
                content_type, media = next(iter(content.items()))
                schema = media.get("schema", {})
                ref = schema.get("$ref", "")
                resolved = schemas.get(ref.rsplit("/", 1)[-1], schema) if ref else schema
                fields = tuple(resolved.get("properties", {}))
            ops.append(Operation(method.upper(), path, query, fields, content_type))
    return ops


def url_quote(text: str) -> str:
    """Percent-encoded UTF-8; a lone surrogate becomes the bytes no UTF-8 decoder accepts."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def encode_body(body: object, content_type: str) -> bytes:
    """`body` as a client sends it: JSON with lone surrogates as \\ud800 escapes, or a form
    with every value percent-encoded."""
    if content_type == "application/x-www-form-urlencoded" and isinstance(body, dict):
        return "&".join(
            f"{url_quote(str(k))}={url_quote(v if isinstance(v, str) else json.dumps(v))}"
            for k, v in body.items()
        ).encode()
    return to_json(body)


def fuzzed(op: Operation, rng: random.Random) -> tuple[str, bytes | None]:
    """A hostile request for `op`: (path with its parameters filled and a query, body)."""
    path = re.sub(r"\{[^}]+\}", lambda _: url_quote(nasty_text(rng, max_len=80)) or "x", op.path)
    query = "&".join(
        f"{q}={url_quote(nasty_text(rng, max_len=80))}" for q in op.query if rng.random() < 0.7
    )
    if query:
        path = f"{path}?{query}"
    if op.body_fields is None:
        return path, None
    if rng.random() < 0.15:
        body: object = nasty_value(rng)
    else:
        body = {f: nasty_value(rng) for f in op.body_fields if rng.random() < 0.9}
    return path, encode_body(body, op.content_type)
