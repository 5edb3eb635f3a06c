"""Naming a spike's problem from its tickets' text, pure: TF-IDF over jieba's words (Chinese)
and plain words (English), an agglomerative clustering by cosine distance, and the largest
cluster's heaviest words and most central subject."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jieba
import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

# Two texts further apart than this (cosine distance, average linkage) are not one problem.
DISTANCE = 0.85
_WORD = re.compile(r"[\w\u4e00-\u9fff]")
_ZH_STOP = frozenset(
    [
        "的",
        "了",
        "是",
        "我",
        "你",
        "他",
        "她",
        "在",
        "和",
        "也",
        "都",
        "就",
        "不",
        "没",
        "吗",
        "吧",
        "呢",
        "啊",
        "呀",
        "怎么",
        "什么",
        "为什么",
        "一个",
        "一下",
        "没有",
        "可以",
        "请",
        "请问",
        "问",
        "还是",
        "已经",
        "这个",
        "那个",
        "我们",
        "你们",
        "今天",
        "现在",
        "就是",
        "一直",
        "还",
        "又",
        "很",
        "有",
        "要",
        "能",
        "会",
        "到",
        "把",
        "被",
        "给",
        "让",
        "说",
        "看",
        "好",
        "谢谢",
        "您好",
        "你好",
        "老师",
        "课程",
        "麻烦",
    ]
)


@dataclass(frozen=True, slots=True)
class Naming:
    title: str
    keywords: tuple[str, ...]
    members: tuple[int, ...]  # the indexes of the texts in the named cluster


def words(text: str) -> list[str]:
    """jieba's segmentation (it passes English words through whole), lower-cased, without
    punctuation, stop words and one-letter Latin words."""
    out = []
    for w in jieba.lcut(text.lower()):
        w = w.strip()
        if not w or not _WORD.search(w) or w in _ZH_STOP or w in ENGLISH_STOP_WORDS:
            continue
        if w.isascii() and len(w) < 2:
            continue
        out.append(w)
    return out


def name_problem(subjects: Sequence[str], texts: Sequence[str], *, keywords: int = 5) -> Naming:
    """The problem most of `texts` (subject and description of each ticket) are about: the
    largest cluster's `keywords` heaviest words and the subject of its ticket nearest the
    cluster's centre."""
    if not texts:
        return Naming(title="", keywords=(), members=())
    vectorizer = TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # not one word left: only punctuation or stop words
        return Naming(title=subjects[0][:200], keywords=(), members=tuple(range(len(texts))))
    dense = np.asarray(matrix.todense())
    if len(texts) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        labels = AgglomerativeClustering(
            n_clusters=None, distance_threshold=DISTANCE, metric="cosine", linkage="average"
        ).fit_predict(_nonzero(dense))
    largest = int(np.bincount(labels).argmax())
    members = np.flatnonzero(labels == largest)
    centre = dense[members].mean(axis=0)
    terms = vectorizer.get_feature_names_out()
    top = [str(terms[i]) for i in np.argsort(-centre)[:keywords] if centre[i] > 0]
    nearest = members[int(np.argmax(dense[members] @ centre))]
    return Naming(
        title=subjects[nearest][:200], keywords=tuple(top), members=tuple(int(m) for m in members)
    )


def _nonzero(dense: np.ndarray) -> np.ndarray:
    """Cosine distance is undefined for an all-zero row (a text of unknown words only): such a
    row gets a tiny weight on a column of its own, far from everything."""
    empty = ~dense.any(axis=1)
    if not empty.any():
        return dense
    extra = np.zeros((dense.shape[0], 1))
    extra[empty] = 1.0
    return np.hstack([dense, extra])
