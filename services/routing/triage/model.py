"""The learned part of triage: features of a ticket's text and channel, the category model and
the text-urgency model, trained together and stored as one artifact."""

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import opencc
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from shared.events import Category, Channel, Priority

_T2S = opencc.OpenCC("t2s")

# Latin words, digits with units ("20min"), and pinyin; CJK is left to the character n-grams.
_WORD = r"(?u)\b[a-z0-9][a-z0-9']+\b"


def normal(subject: str, description: str) -> str:
    """The text the models read: subject and description, NFKC (full-width letters and digits
    become ASCII), lower case, traditional characters as simplified (繁體 tickets share the
    simplified ones' features)."""
    text = unicodedata.normalize("NFKC", f"{subject}\n{description}").lower()
    return str(_T2S.convert(text))


@dataclass(frozen=True, slots=True)
class Sample:
    """What the models see of one ticket."""

    text: str  # normal(subject, description)
    channel: str


class Features:
    """Character 1–3-grams (within word boundaries, so Chinese runs and Latin words alike),
    Latin word uni- and bigrams, and the channel (a suggestion box holds suggestions)."""

    def __init__(self) -> None:
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True, dtype=np.float32
        )
        self.words = TfidfVectorizer(
            analyzer="word",
            token_pattern=_WORD,
            ngram_range=(1, 2),
            min_df=2,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.channels = {c.value: i for i, c in enumerate(sorted(Channel))}

    def fit(self, samples: Sequence[Sample]) -> "Features":
        texts = [s.text for s in samples]
        self.chars.fit(texts)
        self.words.fit(texts)
        return self

    def transform(self, samples: Sequence[Sample]) -> sp.csr_matrix:
        texts = [s.text for s in samples]
        rows = np.arange(len(samples))
        cols = [self.channels.get(s.channel, self.channels["service"]) for s in samples]
        channel = sp.csr_matrix(
            (np.ones(len(samples), dtype=np.float32), (rows, cols)),
            shape=(len(samples), len(self.channels)),
        )
        return sp.hstack(
            [self.chars.transform(texts), self.words.transform(texts), channel], format="csr"
        )


def _classifier() -> LogisticRegression:
    # lbfgs is deterministic; balanced weights keep the rarer labels (urgent) from being
    # drowned by the common ones.
    return LogisticRegression(C=20.0, max_iter=3000, class_weight="balanced")


@dataclass(frozen=True, slots=True)
class Prediction:
    category: Category
    confidence: float  # the category model's top probability
    said: Priority  # what the text alone says of the priority
    urgent_p: float  # the text model's probability of urgent
    blocks_p: float  # the probability that the problem keeps the learner from a class or exam
    second: Category  # the next most probable category
    second_p: float


class Models:
    """Three models over one feature matrix (a batch costs one transform and three predicts):
    the category; what the text says of the priority without any class or exam in sight
    (urgent for a live compromise, low for a prevention question); and whether the problem
    blocks a class or exam close at hand ("the classroom won't load" does, "I have a class
    soon, but by the way my old invoice..." does not)."""

    def __init__(self, features: Features, category: Any, urgency: Any, blocks: Any) -> None:
        self.features = features
        self.category = category
        self.urgency = urgency
        self.blocks = blocks

    @classmethod
    def train(
        cls,
        samples: Sequence[Sample],
        categories: Sequence[Category],
        text_priority: Sequence[Priority | None],
        blocks: Sequence[bool | None],
    ) -> "Models":
        """Train on `samples`; the urgency model only on those whose `text_priority` is known,
        the blocking model on those with a class or exam close enough to tell (see
        priority.text_level and priority.blocked)."""
        features = Features().fit(samples)
        x = features.transform(samples)
        category = _classifier().fit(x, [c.value for c in categories])
        known = [(i, p.value) for i, p in enumerate(text_priority) if p is not None]
        urgency = _classifier().fit(x[[i for i, _ in known]], [p for _, p in known])
        told = [(i, b) for i, b in enumerate(blocks) if b is not None]
        if len({b for _, b in told}) < 2:
            raise ValueError(
                "the corpus needs examples with a class or exam soon that the problem blocks "
                "and ones it does not"
            )
        blocking = _classifier().fit(x[[i for i, _ in told]], [b for _, b in told])
        return cls(features, category, urgency, blocking)

    def predict(self, samples: Sequence[Sample], *, urgent_at: float) -> list[Prediction]:
        """Each sample's category with its confidence, and what its text says of the priority:
        urgent whenever the urgent probability reaches `urgent_at` (missing an urgent ticket
        costs more than a false alarm), else the most probable level."""
        if not samples:
            return []
        x = self.features.transform(samples)
        cat_p = self.category.predict_proba(x)
        urg_p = self.urgency.predict_proba(x)
        blk_p = self.blocks.predict_proba(x)[:, list(self.blocks.classes_).index(True)]
        cats = [Category(c) for c in self.category.classes_]
        levels = [Priority(p) for p in self.urgency.classes_]
        u = levels.index(Priority.URGENT) if Priority.URGENT in levels else None
        out = []
        for cp, up, bp in zip(cat_p, urg_p, blk_p, strict=True):
            second, best = (int(i) for i in np.argsort(cp)[-2:])
            urgent_p = float(up[u]) if u is not None else 0.0
            said = Priority.URGENT if urgent_p >= urgent_at else levels[int(np.argmax(up))]
            out.append(
                Prediction(
                    cats[best],
                    float(cp[best]),
                    said,
                    urgent_p,
                    float(bp),
                    cats[second],
                    float(cp[second]),
                )
            )
        return out
