"""Who is calling: signed webhooks from other systems and signed learner tokens from the app.

Each source (an app backend, a chat widget, a call centre, the LMS…) shares one secret with
careloop, named in CARELOOP_SOURCES_SECRETS. With it a source does two things:

- signs a webhook call: `X-Careloop-Timestamp: <unix seconds>` and
  `X-Careloop-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. The
  timestamp bounds how long a captured call stays usable (the window, 5 minutes either way),
  and within the window a signature is accepted once (`ReplayGuard`, in Redis);
- mints learner tokens (itsdangerous, salted apart from anything else signed with the
  secret) saying which learner is signed in, so that the learner's own device can call
  careloop's learner API without holding the source's secret.

`python -m shared.signing` makes both from the command line, for the README's examples.
"""

import argparse
import asyncio
import hashlib
import hmac
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import itsdangerous
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.emails import EmailAddress
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.settings import Environment, own
from shared.text import Line

log = structlog.get_logger(__name__)

TIMESTAMP_HEADER = "X-Careloop-Timestamp"
SIGNATURE_HEADER = "X-Careloop-Signature"
SOURCE_PATTERN = r"^[a-z][a-z0-9_-]{1,49}$"
Source = Annotated[str, Field(pattern=SOURCE_PATTERN)]
# Secrets a local run (CARELOOP_ENV=local) uses when none are configured, so that the README's
# commands work on a fresh clone. Production refuses them, as it refuses the demo agents.
DEMO_SECRETS = {
    "app": "demo-app-secret",
    "chat": "demo-chat-secret",
    "callcentre": "demo-callcentre-secret",
    "lms": "demo-lms-secret",
}
_LEARNER_SALT = "careloop.learner-token.v1"
_SIGNATURE_PREFIX = "sha256="
_UNAVAILABLE: tuple[type[Exception], ...] = (*TRANSIENT_DRIVER_ERRORS, RedisError)


class SigningSettings(BaseSettings):
    """The sources' secrets and how long what they sign stays valid (CARELOOP_SOURCES_*)."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    env: Environment = Field(
        Environment.PRODUCTION,
        description="`local`: without CARELOOP_SOURCES_SECRETS the demo secrets apply.",
    )
    secrets: dict[str, SecretStr] = own(
        "sources",
        "secrets",
        {},
        'Each source\'s shared secret, as JSON: `{"app": "…", "callcentre": "…", "lms": "…"}`. '
        "Unset in a local run: the demo secrets `demo-<source>-secret` for app, chat, "
        "callcentre and lms.",
    )
    signature_window_seconds: Annotated[int, Field(ge=1)] = own(
        "sources",
        "signature_window_seconds",
        300,
        "A webhook's X-Careloop-Timestamp may be at most this far from careloop's clock; a "
        "signature is accepted once within it.",
    )
    learner_token_max_age_seconds: Annotated[int, Field(ge=1)] = own(
        "sources",
        "learner_token_max_age_seconds",
        24 * 3600,
        "The oldest learner token accepted, whatever expiry its minter gave it.",
    )

    def secrets_in_use(self) -> dict[str, str]:
        """The configured secrets; in a local run without any, the demo ones."""
        if not self.secrets and self.env is Environment.LOCAL:
            return dict(DEMO_SECRETS)
        return {source: s.get_secret_value() for source, s in self.secrets.items()}


@dataclass(frozen=True)
class Refused(Exception):
    """The caller could not be authenticated; `reason` says why (for the 401's body)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


# ---- webhooks -----------------------------------------------------------------------------


def signature(secret: str, *, timestamp: int | str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 under `secret` of the timestamp, a dot and the raw body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return _SIGNATURE_PREFIX + mac.hexdigest()


def sign(secret: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    """The headers that make `body` a signed webhook call, as a source sends them."""
    timestamp = int(time.time() if at is None else at)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp=timestamp, body=body),
    }


def verify_signature(
    *,
    secret: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    window_seconds: int,
    now: float | None = None,
) -> None:
    """Raise `Refused` unless `body` was signed with `secret` within the window.

    `secret` is None when the caller named a source careloop has no secret for.
    """
    if secret is None:
        raise Refused("unknown source: no secret is configured for it")
    if not timestamp:
        raise Refused(f"{TIMESTAMP_HEADER} is missing")
    if not signature_header:
        raise Refused(f"{SIGNATURE_HEADER} is missing")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise Refused(f"{TIMESTAMP_HEADER} must be a Unix time in whole seconds")
    skew = int(time.time() if now is None else now) - int(timestamp)
    if abs(skew) > window_seconds:
        when = "old" if skew > 0 else "in the future"
        raise Refused(
            f"stale: {TIMESTAMP_HEADER} is {abs(skew)} s {when}; at most {window_seconds} s "
            "is accepted (sign each attempt when it is sent)"
        )
    given = signature_header.strip()
    if not given.startswith(_SIGNATURE_PREFIX) or len(given) != len(_SIGNATURE_PREFIX) + 64:
        raise Refused(f"{SIGNATURE_HEADER} must be sha256= and 64 hex digits")
    expected = signature(secret, timestamp=timestamp, body=body)
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise Refused(
            f"forged: {SIGNATURE_HEADER} does not match the body and timestamp under this "
            "source's secret"
        )


class ReplayGuard:
    """Each signature is accepted once while its timestamp is valid: a captured call sent again
    is refused. Redis unavailable lets the call through (logged): every signed channel names
    its ticket by the sender's own id, so a replay is at worst a duplicate desk ignores."""

    def __init__(self, redis: Any, *, window_seconds: int, timeout_seconds: float) -> None:
        self._redis = redis
        # A timestamp up to the window in the future stays valid for twice the window.
        self._ttl = 2 * window_seconds
        self._timeout = timeout_seconds

    @staticmethod
    def _key(source: str, signature_header: str) -> str:
        return f"careloop:signing:seen:{source}:{signature_header.strip().lower()}"

    async def first_use(self, source: str, signature_header: str) -> None:
        """Record the signature's use; raise `Refused` when it was used before."""
        redis: Redis = self._redis()
        try:
            async with asyncio.timeout(self._timeout):
                key = self._key(source, signature_header)
                fresh = await redis.set(key, "1", nx=True, ex=self._ttl)
        except _UNAVAILABLE as exc:
            log.warning("replay check unavailable; accepting the call", error=repr(exc))
            return
        if not fresh:
            raise Refused(
                "replayed: this signature was already used; sign each call anew with a fresh "
                f"{TIMESTAMP_HEADER}"
            )

    async def release(self, source: str, signature_header: str) -> None:
        """Forget a use whose call was not stored (Kafka did not acknowledge), so that the
        sender's retry of the very same request is not taken for a replay."""
        redis: Redis = self._redis()
        try:
            async with asyncio.timeout(self._timeout):
                await redis.delete(self._key(source, signature_header))
        except _UNAVAILABLE as exc:
            log.warning("replay mark not released", error=repr(exc))


# ---- learner tokens -----------------------------------------------------------------------


class LearnerClaims(BaseModel):
    """Who a learner token speaks for, as the source that minted it vouches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    learner_id: Line = Field(min_length=1, max_length=100)
    name: Line = Field(min_length=1, max_length=200)
    email: EmailAddress | None = Field(None, max_length=320)
    phone: str | None = Field(None, pattern=r"^\+?[0-9][0-9 ()-]{5,30}$")
    expires_at: StrictInt = Field(description="Unix seconds.")


def _serializer(secret: str) -> itsdangerous.URLSafeTimedSerializer:
    return itsdangerous.URLSafeTimedSerializer(secret, salt=_LEARNER_SALT)


def learner_token(
    *,
    source: str,
    secret: str,
    learner_id: str,
    name: str,
    email: str | None = None,
    phone: str | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """A token for one learner: `<source>.<itsdangerous signed claims>`.

    The source comes first in the clear so that the verifier knows whose secret to check it
    with; it is inside the signed claims too, so it cannot be changed.
    """
    claims = LearnerClaims(
        source=source,
        learner_id=learner_id,
        name=name,
        email=email,
        phone=phone,
        expires_at=int((time.time() if now is None else now) + ttl_seconds),
    )
    return f"{source}.{_serializer(secret).dumps(claims.model_dump(exclude_none=True))}"


def verify_learner_token(
    token: str,
    secrets: Mapping[str, str],
    *,
    max_age_seconds: int = 24 * 3600,
    now: float | None = None,
) -> LearnerClaims:
    """The claims of a valid token; `Refused` naming the problem otherwise."""
    source, dot, signed = token.partition(".")
    if not dot or not signed:
        raise Refused("malformed learner token: expected <source>.<signed claims>")
    secret = secrets.get(source)
    if secret is None:
        raise Refused("unknown source: no secret is configured for this learner token's source")
    try:
        payload = _serializer(secret).loads(signed, max_age=max_age_seconds)
    except itsdangerous.SignatureExpired as exc:
        raise Refused(f"expired: the learner token is older than {max_age_seconds} s") from exc
    except itsdangerous.BadData as exc:
        raise Refused("forged: the learner token's signature does not match") from exc
    try:
        claims = LearnerClaims.model_validate(payload)
    except ValidationError as exc:
        raise Refused("the learner token's claims are not valid") from exc
    if claims.source != source:
        raise Refused("the learner token's source does not match its claims")
    if claims.expires_at <= (time.time() if now is None else now):
        raise Refused("expired: the learner token's expiry has passed")
    return claims


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# ---- command line -------------------------------------------------------------------------


def _secret(source: str) -> str:
    secret = SigningSettings().secrets_in_use().get(source)
    if secret is None:
        sys.exit(
            f"no secret for source {source!r}: set CARELOOP_SOURCES_SECRETS, or CARELOOP_ENV=local "
            "for the demo secrets"
        )
    return secret


def _body(value: str) -> bytes:
    return Path(value[1:]).read_bytes() if value.startswith("@") else value.encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.signing",
        description="Sign a webhook body or mint a learner token with a source's secret "
        "(CARELOOP_SOURCES_SECRETS; the demo secrets when CARELOOP_ENV=local).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    signer = commands.add_parser(
        "sign",
        help="print the signature headers for a body, one per line (curl -H @file reads them)",
    )
    signer.add_argument("--source", required=True)
    signer.add_argument("--body", required=True, help="the body, or @file for a file's bytes")
    minter = commands.add_parser("learner-token", help="print a learner token")
    minter.add_argument("--source", required=True)
    minter.add_argument("--learner-id", required=True)
    minter.add_argument("--name", required=True)
    minter.add_argument("--email")
    minter.add_argument("--phone")
    minter.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    secret = _secret(args.source)
    if args.command == "sign":
        for header, value in sign(secret, _body(args.body)).items():
            print(f"{header}: {value}")
        return
    try:
        token = learner_token(
            source=args.source,
            secret=secret,
            learner_id=args.learner_id,
            name=args.name,
            email=args.email,
            phone=args.phone,
            ttl_seconds=args.ttl,
        )
    except ValidationError as exc:
        sys.exit(f"not a valid learner token: {exc}")
    print(token)


if __name__ == "__main__":
    main()
