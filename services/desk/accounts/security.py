"""The arithmetic of accounts, free of I/O: password hashes, secrets, lockout, session expiry
and the CSRF comparison."""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane): about 60 ms a
# check on a busy 2-core machine, where argon2-cffi's default (64 MiB, 3 passes, 4 lanes) took
# 450-570 ms and held 64 MiB per login. A stored hash made with other parameters is redone at
# the next login (`needs_rehash`).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the login names nobody, so that a wrong name takes as long as a
# wrong password and timing does not tell which accounts exist.
_NOBODY = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD = 10
MAX_PASSWORD = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash; a user without a password never matches."""
    try:
        return _hasher.verify(stored or _NOBODY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)


def new_secret() -> str:
    """A session id, CSRF token or API token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a session id or API token: its SHA-256 (32 random bytes leave
    nothing to brute-force, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def locked_until(failures: Sequence[datetime], *, limit: int, window: timedelta) -> datetime | None:
    """When logins open again after `failures` (newest first, those within the window): at
    most `limit` failures per sliding `window`, so with `limit` or more the lock lasts until
    the `limit`-th newest leaves the window. None: not locked (or `limit` is 0: no lockout)."""
    if limit <= 0 or len(failures) < limit:
        return None
    return failures[limit - 1] + window


def session_expires(
    *, created_at: datetime, last_seen_at: datetime, idle: timedelta, absolute: timedelta
) -> datetime:
    """When a session ends: after `idle` without use, and `absolute` after login at the latest."""
    return min(last_seen_at + idle, created_at + absolute)


def same_secret(given: str | None, expected: str) -> bool:
    """A constant-time comparison; a missing value never matches."""
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def local_path(target: str | None) -> str:
    """Where to go after login: `target` if it is a path on this site, else the workspace.
    `//evil.example` and `/\\evil.example` are other sites to a browser."""
    if (
        target
        and target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and target.isprintable()
    ):
        return target
    return "/"
