"""Webhook signatures and learner tokens: what a source signs verifies, anything else is refused."""

import hashlib
import hmac
import json
import time

import pytest

from shared.settings import Environment
from shared.signing import (
    DEMO_SECRETS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Refused,
    SigningSettings,
    bearer,
    learner_token,
    main,
    sign,
    verify_learner_token,
    verify_signature,
)

SECRET = "s3cret-of-the-call-centre"
BODY = json.dumps({"call_id": "C-1001", "caller_number": "+86 138 0013 8000"}).encode()
NOW = 1_780_000_000


def _verify(headers: dict[str, str], body: bytes = BODY, **kw: object) -> None:
    verify_signature(
        secret=kw.get("secret", SECRET),  # type: ignore[arg-type]
        timestamp=headers.get(TIMESTAMP_HEADER),
        signature_header=headers.get(SIGNATURE_HEADER),
        body=body,
        window_seconds=300,
        now=kw.get("now", NOW),  # type: ignore[arg-type]
    )


def test_a_signed_body_verifies() -> None:
    _verify(sign(SECRET, BODY, at=NOW - 299))


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, at=NOW)[SIGNATURE_HEADER] == f"sha256={expected}"


def test_a_changed_body_is_forged() -> None:
    with pytest.raises(Refused, match="forged"):
        _verify(sign(SECRET, BODY, at=NOW), body=BODY.replace(b"1001", b"1002"))


def test_another_secret_is_forged() -> None:
    with pytest.raises(Refused, match="forged"):
        _verify(sign("not-the-secret", BODY, at=NOW))


def test_a_timestamp_outside_the_window_is_stale_either_way() -> None:
    with pytest.raises(Refused, match=r"stale: .* 301 s old"):
        _verify(sign(SECRET, BODY, at=NOW - 301))
    with pytest.raises(Refused, match="in the future"):
        _verify(sign(SECRET, BODY, at=NOW + 400))


def test_a_moved_timestamp_breaks_the_signature() -> None:
    headers = sign(SECRET, BODY, at=NOW - 10)
    with pytest.raises(Refused, match="forged"):
        _verify({**headers, TIMESTAMP_HEADER: str(NOW)})


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "Timestamp is missing"),
        ({TIMESTAMP_HEADER: str(NOW)}, "Signature is missing"),
        ({TIMESTAMP_HEADER: "12.5", SIGNATURE_HEADER: "sha256=00"}, "Unix time"),
        ({TIMESTAMP_HEADER: "١٢٣", SIGNATURE_HEADER: "sha256=00"}, "Unix time"),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "md5=abc"}, "64 hex digits"),
    ],
)
def test_missing_or_malformed_headers_name_the_problem(
    headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(Refused, match=reason):
        _verify(headers)


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(Refused, match="unknown source"):
        _verify(sign(SECRET, BODY, at=NOW), secret=None)


def test_a_learner_token_carries_its_claims() -> None:
    token = learner_token(
        source="app", secret="app-secret", learner_id="L-42", name="王芳", email="Wang@Example.com"
    )

    claims = verify_learner_token(token, {"app": "app-secret"})

    assert (claims.source, claims.learner_id, claims.name) == ("app", "L-42", "王芳")
    assert claims.email == "Wang@example.com"
    assert claims.phone is None
    assert token.startswith("app.")


def test_a_learner_token_past_its_expiry_is_refused() -> None:
    token = learner_token(
        source="app", secret="k", learner_id="L1", name="Li", ttl_seconds=60, now=time.time() - 61
    )
    with pytest.raises(Refused, match="expiry has passed"):
        verify_learner_token(token, {"app": "k"})


def test_a_learner_token_older_than_the_max_age_is_refused() -> None:
    token = learner_token(source="app", secret="k", learner_id="L1", name="Li", ttl_seconds=9999)
    with pytest.raises(Refused, match="older than"):
        verify_learner_token(token, {"app": "k"}, max_age_seconds=-1)


def test_a_learner_token_for_another_source_cannot_pass_as_this_one() -> None:
    token = learner_token(source="chat", secret="chat-k", learner_id="L1", name="Li")
    relabelled = "app." + token.partition(".")[2]
    with pytest.raises(Refused, match="forged"):
        verify_learner_token(relabelled, {"app": "app-k", "chat": "chat-k"})
    with pytest.raises(Refused, match="does not match its claims"):
        verify_learner_token(relabelled, {"app": "chat-k"})


@pytest.mark.parametrize(
    ("token", "reason"),
    [("nodot", "malformed"), ("app.", "malformed"), ("lms.abc", "unknown source")],
)
def test_malformed_learner_tokens_are_refused(token: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        verify_learner_token(token, {"app": "k"})


def test_a_tampered_learner_token_is_forged() -> None:
    token = learner_token(source="app", secret="k", learner_id="L1", name="Li")
    with pytest.raises(Refused, match="forged"):
        verify_learner_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), {"app": "k"})


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def", "abc.def"), ("bearer  abc ", "abc"), ("Basic abc", None), (None, None)],
)
def test_bearer_reads_the_token(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_demo_secrets_apply_only_to_a_local_run_without_secrets() -> None:
    assert SigningSettings(env=Environment.LOCAL).secrets_in_use() == DEMO_SECRETS
    assert SigningSettings(env=Environment.PRODUCTION).secrets_in_use() == {}
    configured = SigningSettings(env=Environment.LOCAL, CARELOOP_SOURCES_SECRETS={"lms": "x"})
    assert configured.secrets_in_use() == {"lms": "x"}


def test_the_command_line_signs_a_file_and_mints_a_token(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARELOOP_SOURCES_SECRETS", json.dumps({"lms": "lms-k", "app": "app-k"}))
    body = tmp_path / "body.json"  # type: ignore[operator]
    body.write_bytes(BODY)

    main(["sign", "--source", "lms", "--body", f"@{body}"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    verify_signature(
        secret="lms-k",
        timestamp=lines[TIMESTAMP_HEADER],
        signature_header=lines[SIGNATURE_HEADER],
        body=BODY,
        window_seconds=300,
    )

    main(["learner-token", "--source", "app", "--learner-id", "L7", "--name", "Zhang San"])
    claims = verify_learner_token(capsys.readouterr().out.strip(), {"app": "app-k"})
    assert claims.learner_id == "L7"
