"""The 429 a refused verdict becomes: Retry-After, and a JSON body naming the limit."""

import json

from shared.ratelimit import Limit, Verdict, too_many

REFUSED = Verdict(
    allowed=False, limit=Limit("email", "li@example.com", 10, 600), retry_after_seconds=42
)


def test_a_refusal_answers_429_with_retry_after() -> None:
    answer = too_many(REFUSED, what="submissions")

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "42"


def test_a_refusal_names_the_limit_and_its_numbers_but_not_the_subject() -> None:
    answer = too_many(REFUSED, what="submissions")
    body = json.loads(bytes(answer.body))

    assert body == {
        "detail": "rate limit 'email' reached: at most 10 submissions in 600 s; retry after 42 s",
        "limit": "email",
        "retry_after_seconds": 42,
    }
    assert b"li@example.com" not in answer.body
