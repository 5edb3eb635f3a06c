"""Tokens in links e-mailed to learners: random, sent raw, stored only as their SHA-256.

A leaked table then opens no confirmation or survey: the raw token exists only in the
e-mail (and the event that carries its link). 24 random bytes leave nothing to brute-force,
so a plain SHA-256 is enough; look-ups are by that digest.
"""

import hashlib
import secrets


def new_token() -> str:
    """A fresh link token: 24 random bytes, URL-safe (32 characters, matching `text.Token`)."""
    return secrets.token_urlsafe(24)


def digest(token: str) -> str:
    """What is stored and looked up: the token's SHA-256, hex. Migrations hash existing rows
    with the same function in SQL: encode(sha256(convert_to(token, 'UTF8')), 'hex')."""
    return hashlib.sha256(token.encode()).hexdigest()
