"""The one-scan keyword matcher of routing's triage gives what one regular expression per
category gave (the matcher it replaced, kept here as the oracle)."""

import random
import re
from collections.abc import Iterable

import pytest

from services.routing.domain import KEYWORDS, SOON, TEAM_OF, Triage, priority_of, triage
from shared.events import Category


def _pattern(words: Iterable[str]) -> re.Pattern[str]:
    parts = [rf"\b{re.escape(w)}\b" if w.isascii() else re.escape(w) for w in words]
    return re.compile("|".join(parts), re.IGNORECASE)


_RULES = tuple((category, _pattern(words)) for category, words in KEYWORDS)
_SOON = _pattern(SOON)


def oracle(subject: str, description: str) -> Triage:
    """The triage before the one-scan matcher: one regular-expression pass per category."""
    text = f"{subject}\n{description}"
    best, best_hits = Category.OTHER, list[str]()
    for category, pattern in _RULES:
        hits = pattern.findall(text)
        if len(hits) > len(best_hits):
            best, best_hits = category, hits
    return Triage(
        category=best,
        priority=priority_of(best, soon=bool(_SOON.search(text))),
        team=TEAM_OF[best],
        matched=tuple(dict.fromkeys(h.lower() for h in best_hits)),
    )


# Pieces that test the edges: keywords inside other keywords of another category ("登录" in
# "异地登录", "login" in "unknown login"), one keyword a prefix of another ("complain",
# "complaint"), words that contain a keyword without being it ("happy", "errors"), case.
TRICKY = [
    "异地登录",
    "登录",
    "陌生登录登录",
    "unknown login",
    "Unknown Login",
    "login",
    "log in",
    "complain",
    "complaint",
    "complaints",
    "charge",
    "charged",
    "recharged",
    "suggest",
    "suggestion",
    "happy",
    "app",
    "apps",
    "APP",
    "errors",
    "error_code",
    "error-code",
    "紧急",
    "急",
    "change my teacher",
    "change teacher",
    "my app崩溃",
    "app闪退",
    "2fa",
    "_password",
    "password1",
]
FILLER = ["the", "and", ",", ".", "\n", "我", "的", "了", "  ", "course", "x", "123", "!"]
KEYWORD_POOL = sorted({w for _, words in KEYWORDS for w in words} | set(SOON))


def generated(seed: int, count: int) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    pool = KEYWORD_POOL + TRICKY + FILLER * 4
    texts = []
    for _ in range(count):
        pieces = [rnd.choice(pool) for _ in range(rnd.randint(0, 40))]
        pieces = [p.upper() if rnd.random() < 0.1 else p for p in pieces]
        joiner = rnd.choice([" ", "", ", "])
        cut = rnd.randint(0, len(pieces))
        texts.append((joiner.join(pieces[:cut]), joiner.join(pieces[cut:])))
    return texts


EXAMPLES = [
    ("账号被盗", "我的账号被盗了，还有异地登录提醒"),
    ("Refund", "The video stops."),
    ("Video VIDEO", "video playback"),
    ("", ""),
    ("异地登录 登录", "登录"),
    ("complaint complain", "I complain; complaints"),
    ("Several problems", "The app keeps showing an error; I was charged twice; 明天要考试。" * 12),
]


@pytest.mark.parametrize("subject, description", EXAMPLES)
def test_the_matcher_triages_an_example_as_one_regex_per_category_did(
    subject: str, description: str
) -> None:
    assert triage([(subject, description)]) == [oracle(subject, description)]


def test_the_matcher_triages_a_batch_of_generated_texts_as_one_regex_per_category_did() -> None:
    texts = generated(seed=6, count=2000)

    assert triage(texts) == [oracle(s, d) for s, d in texts]


def test_a_batch_gives_each_ticket_what_it_gets_alone() -> None:
    texts = generated(seed=7, count=200)

    assert triage(texts) == [result for s, d in texts for result in triage([(s, d)])]


def test_an_empty_batch_gives_nothing() -> None:
    assert triage([]) == []
