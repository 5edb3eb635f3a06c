"""Search words for Chinese and English text, the same for every service that searches.

PostgreSQL's parsers do not cut Chinese into words; jieba does, in Python, so a service stores
a tsvector made from these words (the 'english' configuration stems the English ones and
leaves the Chinese ones as jieba cut them) and queries with `query`.
"""

import re
from functools import cache

import jieba
import opencc

from shared.text import detect_language

jieba.setLogLevel(60)  # its dictionary-loading chatter is not ours to log

# Words that say nothing about what a learner asks. Single characters jieba leaves on their own
# (到, 账) stay: in a short Chinese question they may carry the meaning.
_STOPWORDS = """
的 了 吗 呢 吧 啊 呀 么 我 你 他 她 它 我们 你们 是 在 有 和 与 及 或 就 都 也 还 要
请问 请 一下 怎么 怎么办 怎样 如何 为什么 什么 可以 能 能不能 不能 一个 这个 那个
hi hello please thanks thank
"""
STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"\w+")
MAX_QUERY_WORDS = 64


@cache
def _simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def words(text: str) -> list[str]:
    """`text`'s search words, in order, once each: Chinese cut by jieba (traditional characters
    as simplified), other words as they are, lower-cased; Postgres stems the English ones."""
    simplified = _simplified().convert(text) if detect_language(text) == "zh" else text
    seen: dict[str, None] = {}
    for piece in jieba.cut_for_search(simplified.lower()):
        for word in _WORD.findall(piece):
            if word not in STOPWORDS:
                seen.setdefault(word, None)
    return list(seen)


def indexed(text: str) -> str:
    """`text` as the space-separated words its tsvector is made of."""
    return " ".join(words(text))


def query(text: str) -> str | None:
    """A tsquery that matches any of `text`'s words (ranking rewards those matching more), or
    None when it has none. Words are runs of word characters, so none of tsquery's operators
    can reach it from the text."""
    found = words(text)[:MAX_QUERY_WORDS]
    return " | ".join(found) if found else None
