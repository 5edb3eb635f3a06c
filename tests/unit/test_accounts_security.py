"""Accounts' arithmetic: password hashes, the lockout window, session expiry, CSRF comparison,
where a login may send the browser, and the login page's language."""

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher

from services.desk.accounts.security import (
    digest,
    hash_password,
    local_path,
    locked_until,
    needs_rehash,
    same_secret,
    session_expires,
    verify_password,
)
from services.desk.accounts.web import pick_language

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def test_a_password_hash_is_argon2id_salted_and_checks_only_its_password() -> None:
    first, second = hash_password("密码 correct horse"), hash_password("密码 correct horse")
    assert first.startswith("$argon2id$") and first != second  # a salt of its own
    assert verify_password(first, "密码 correct horse")
    assert not verify_password(first, "密码 correct hors")
    assert not needs_rehash(first)


def test_no_password_and_a_broken_hash_never_match() -> None:
    assert not verify_password(None, "")
    assert not verify_password(None, "anything at all")
    assert not verify_password("not-a-hash", "anything at all")


def test_a_hash_made_with_weaker_parameters_is_rehashed_at_login() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("an old password")
    assert verify_password(weak, "an old password") and needs_rehash(weak)


def test_tokens_are_stored_as_sha256() -> None:
    assert digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_fewer_failures_than_the_limit_lock_nothing() -> None:
    failures = [T0 - timedelta(minutes=m) for m in range(4)]
    assert locked_until(failures, limit=5, window=WINDOW) is None


def test_the_limit_th_newest_failure_locks_until_it_leaves_the_window() -> None:
    failures = [T0 - timedelta(minutes=m) for m in (0, 1, 2, 3, 10, 11)]  # newest first
    assert locked_until(failures, limit=5, window=WINDOW) == T0 - timedelta(minutes=10) + WINDOW


def test_a_limit_of_zero_never_locks() -> None:
    assert locked_until([T0] * 100, limit=0, window=WINDOW) is None


def test_a_session_ends_when_idle_or_at_its_absolute_end_whichever_is_first() -> None:
    idle, absolute = timedelta(minutes=60), timedelta(hours=12)
    fresh = session_expires(created_at=T0, last_seen_at=T0, idle=idle, absolute=absolute)
    assert fresh == T0 + idle
    late = T0 + timedelta(hours=11, minutes=30)
    used = session_expires(created_at=T0, last_seen_at=late, idle=idle, absolute=absolute)
    assert used == T0 + absolute


def test_csrf_tokens_compare_whole_and_a_missing_one_fails() -> None:
    assert same_secret("tok-1", "tok-1")
    assert not same_secret("tok-", "tok-1")
    assert not same_secret(None, "tok-1")
    assert not same_secret("", "tok-1")


def test_after_login_the_browser_stays_on_this_site() -> None:
    assert local_path("/tickets/CL-000123?tab=notes") == "/tickets/CL-000123?tab=notes"
    for elsewhere in ("//evil.example/", "/\\evil.example", "https://evil.example/", "", None):
        assert local_path(elsewhere) == "/"
    assert local_path("/ok\r\nSet-Cookie: x=1") == "/"


def test_the_login_page_speaks_what_was_chosen_else_what_the_browser_prefers() -> None:
    assert pick_language("en", "zh-CN,zh") == "en"
    assert pick_language(None, "en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert pick_language(None, "zh-TW,en;q=0.5") == "zh"
    assert pick_language("fr", "fr-FR") == "zh"
    assert pick_language(None, None) == "zh"
