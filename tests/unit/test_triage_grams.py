"""CharGrams counts with numpy exactly the features scikit-learn's char_wb TfidfVectorizer
computes: on the whole corpus and check set, and on the texts most likely to split otherwise."""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer

from services.routing.triage import corpus
from services.routing.triage.grams import CharGrams
from services.routing.triage.model import _latin, _subject, normal
from services.routing.triage.store import TriageSettings

ODD = [
    "",
    "   ",
    "\n\t 前后都是空白 \u3000 ",
    "a b c",
    "x\0y 0",
    "😀😀 emoji 表情 😂",
    "ＦＵＬＬ－ｗｉｄｔｈ",
    "I 我 a 啊 ab",
    "never seen: ЖЖЖ ΩΩ ॐ",
    "\ud800 a lone surrogate",
    "multiple\n\nlines\r\nand\x1ccontrol\x1fseparators",
]


def same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return a.shape == b.shape and np.array_equal(a.toarray(), b.toarray())


def texts(settings: TriageSettings) -> list[str]:
    paths = corpus.files(settings.corpus_dir) + corpus.files(settings.check_dir)
    return [normal(e.subject, e.description) for e in corpus.read(paths)]


@pytest.fixture(scope="module")
def everything() -> list[str]:
    return texts(TriageSettings())


@pytest.mark.parametrize(
    ("low", "high", "part"),
    [(1, 3, str), (4, 5, _latin), (1, 3, _subject), (2, 4, str), (4, 6, str)],
    ids=["chars", "latin", "subject", "2-4", "4-6"],
)
def test_the_same_features_as_scikit_learn(
    everything: list[str], low: int, high: int, part: Callable[[str], str]
) -> None:
    train = [part(t) for t in everything[::4]]
    unseen = [part(t) for t in everything[1::4]] + ODD
    options: dict[str, Any] = {"min_df": 2, "sublinear_tf": True, "dtype": np.float32}
    options |= {"analyzer": "char_wb", "ngram_range": (low, high)}
    theirs = TfidfVectorizer(**options).fit(train)
    ours = CharGrams(**options).fit(train)
    assert ours.vocabulary_ == theirs.vocabulary_
    assert ours.transform([]).shape == (0, len(ours.vocabulary_))  # scikit-learn refuses none
    for docs in (train, unseen, ODD):
        expected, got = theirs.transform(docs), ours.transform(docs)
        assert got.shape == expected.shape
        assert got.dtype == expected.dtype
        assert same(got, expected)


def test_a_short_word_counts_once_whole_as_scikit_learn_counts_it() -> None:
    docs = ["a ab abc abcd", "a ab abc", "ab x"]
    options: dict[str, Any] = {"analyzer": "char_wb", "ngram_range": (4, 5), "norm": None}
    theirs = TfidfVectorizer(**options, use_idf=False)
    ours = CharGrams(**options, use_idf=False)
    expected = theirs.fit_transform(docs)
    got = ours.fit_transform(docs)
    assert " a " in ours.vocabulary_ and " ab " in ours.vocabulary_
    assert same(got, expected)


def test_a_vocabulary_with_nul_characters_falls_back_to_scikit_learn() -> None:
    docs = ["a\0b c", "a\0b d", "c d"]
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2).fit(docs)
    ours = CharGrams(analyzer="char_wb", ngram_range=(1, 3), min_df=2).fit(docs)
    assert not ours._packed
    assert same(ours.transform(docs), theirs.transform(docs))


def test_an_unfitted_one_says_so_as_scikit_learn_does() -> None:
    with pytest.raises(NotFittedError):
        CharGrams(analyzer="char_wb").transform(["a b"])


def test_only_char_wb_is_counted() -> None:
    with pytest.raises(ValueError, match="char_wb"):
        CharGrams(analyzer="char").fit(["a b"])


def test_too_many_characters_to_pack_falls_back_to_scikit_learn() -> None:
    # 6,150 characters: 13 bits each, and a 5-gram needs 65
    pairs = [chr(0x4E00 + i) + chr(0x4E01 + i) for i in range(6150)]
    docs = [" ".join(pairs[j : j + 300]) for j in range(0, 6000, 150)]
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 5)).fit(docs)
    ours = CharGrams(analyzer="char_wb", ngram_range=(1, 5)).fit(docs)
    assert not ours._packed
    assert same(ours.transform(docs), theirs.transform(docs))
