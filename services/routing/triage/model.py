"""The learned part of triage: features of a ticket's text and channel, the category model and
the text-urgency model, trained together and stored as one artifact."""

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import opencc
import rjieba
import scipy.sparse as sp
from pypinyin.pinyin_dict import pinyin_dict
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.naive_bayes import ComplementNB

from services.routing.triage.grams import CharGrams
from services.routing.triage.priority import LIVE_COMPROMISE, STANDING, standing
from shared.events import Category, Channel, Priority

_T2S = opencc.OpenCC("t2s")

# Latin words, digits with units ("20min"), and pinyin; CJK is left to the character n-grams
# and to jieba's words.
_WORD = r"(?u)\b[a-z0-9][a-z0-9']+\b"
_CJK = re.compile(r"[\u3400-\u9fff]+")

# A negation that denies a category rather than stating the problem: "not a complaint", "I'm not
# asking for a refund", "don't want to switch", "不是投诉", "没被盗", "不想退款". The words it
# denies are taken out of the text the models read and given features of their own, so that
# "not a complaint" stops counting as a complaint. A negation that states the problem ("can't
# log in", "打不开") is left alone: it is the problem.
_DENIED_EN = re.compile(
    r"\b(?:not|no|nor)\s+(?:(?:really|just|even|about|asking\s+(?:for|about)|looking\s+for"
    r"|related\s+to|an?|the|my|any)\s+)*((?:[a-z0-9'-]+\s*){1,3})"
    r"|\b(?:do|did)\s*n[o']t\s+(?:want|need|mean)\s+(?:to\s+)?(?:(?:an?|any|my)\s+)?"
    r"((?:[a-z0-9'-]+\s*){1,3})"
)
_DENIED_ZH = re.compile(
    r"(?<!是)(?:不是|并非|不算|不想|没有?被|不需要|不用|不要|无需)(?:要|说|想|来)?"
    r"([\u3400-\u9fffa-z ]{1,6})"
)


def denied(text: str) -> tuple[str, str]:
    """(the text without the words a negation denies, those words)."""
    words: list[str] = []

    def cut(m: re.Match[str]) -> str:
        span = next((g for g in m.groups() if g), "")
        words.append(span.strip())
        return m[0][: m[0].rfind(span)]

    kept = _DENIED_ZH.sub(cut, _DENIED_EN.sub(cut, text))
    return kept, " ".join(words)


def zh_words(text: str) -> list[str]:
    """jieba's words of the Chinese runs of `text` (dictionary only, no HMM guesses: the same
    text always splits the same way). "退款" and "退出" are words apart where the character
    n-grams share "退". rjieba is jieba in Rust, with jieba's dictionary: on the corpus's 24,537
    Chinese runs it cuts every one as jieba 0.42 does, in a ninth of the time."""
    return [w for run in _CJK.findall(text) for w in rjieba.cut(run, hmm=False)]


_LATIN = re.compile(r"[a-z][a-z']+")


def _latin(text: str) -> str:
    """The Latin words of a (normalised) text, without the Chinese around them."""
    return " ".join(_LATIN.findall(text))


def _subject(text: str) -> str:
    """The subject line of a normalised text (`normal` puts it first, on a line of its own)."""
    return text.partition("\n")[0]


def _toneless(reading: str) -> str:
    """A reading as learners type pinyin, without tones: "lǜ" -> "lv", "mì" -> "mi"."""
    bare = unicodedata.normalize("NFKD", reading.replace("ü", "v"))
    return "".join(c for c in bare if not unicodedata.combining(c))


# Each Chinese character's first reading, without tones (its first is its commonest), and the
# syllables pinyin is written in.
_READING = {chr(k): _toneless(v.split(",")[0]) for k, v in pinyin_dict.items()}
_SYLLABLES = frozenset(_READING.values())
# For str.translate: each Chinese character as its reading between spaces, none for one without.
_SPOKEN: dict[int, str | None] = {k: None for k in range(0x3400, 0xA000)} | {
    ord(c): f" {r} " for c, r in _READING.items() if r
}
_LONGEST = max(map(len, _SYLLABLES))


@functools.lru_cache(maxsize=65536)
def _syllables(word: str) -> tuple[str, ...] | None:
    """A Latin word cut into pinyin syllables ("zhanghao" -> zhang hao), each the longest whose
    rest can be cut too ("xian" -> xian, "xianzai" -> xian zai); None when it is no pinyin
    ("refund")."""
    out: list[str] = []
    i = 0
    while i < len(word):
        for n in range(min(_LONGEST, len(word) - i), 0, -1):
            if word[i : i + n] in _SYLLABLES and (i + n == len(word) or _syllables(word[i + n :])):
                out.append(word[i : i + n])
                i += n
                break
        else:
            return None
    return tuple(out)


def sounds(text: str) -> str:
    """The text as pinyin syllables, so a ticket typed in pinyin ("mima wangle") shares features
    with the ones in characters (密码忘了): the Chinese characters' readings, and the Latin words
    too when nearly all of them are pinyin (an English text's words seldom are)."""
    parts = [run.translate(_SPOKEN) for run in _CJK.findall(text)]
    latin = _LATIN.findall(text)
    cut = [_syllables(w) for w in latin]
    if latin and sum(c is not None for c in cut) >= 0.8 * len(latin):
        parts += [" ".join(c) for c in cut if c]
    return " ".join(" ".join(parts).split())


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


# The matrix's first columns: the STANDING cues, which only the priority models read.
CUES = len(STANDING)


def _tfidf(kind: type[TfidfVectorizer] = TfidfVectorizer, **kwargs: Any) -> TfidfVectorizer:
    return kind(min_df=2, sublinear_tf=True, dtype=np.float32, **kwargs)


def _grams(low: int, high: int) -> TfidfVectorizer:
    """Character n-grams within words, counted with numpy (see grams.py)."""
    return _tfidf(CharGrams, analyzer="char_wb", ngram_range=(low, high))


class Features:
    """Of the text less its denied words: character 1–3-grams (within word boundaries, so
    Chinese runs and Latin words alike), Latin word uni- and bigrams, jieba's Chinese words; the
    denied words' character n-grams apart; and the channel (a suggestion box holds
    suggestions). The category model reads two more: the Latin words' character 4–5-grams
    (English stems and inflections: "refunded" and "refunding", "reschedule" and
    "rescheduling" share theirs) and the subject line's character n-grams (the writer's own
    one-line summary), and the text as toneless pinyin syllables (a ticket typed in pinyin
    shares the features of one in characters). The priority models do without them: on the
    first writers' cross-validation the first two took English category accuracy from 88.4 %
    to 89.5 %, but cost the urgency model three points of precision at the same recall; the
    pinyin took Chinese from 92.3 % to 92.9 % (pinyin tickets: 6 of 25 wrong to 1). The
    priority models read the cues to how the trouble stands too (priority.STANDING: over, or still
    going on); the category model does without them (reading them too, its accuracy in the 5-fold
    cross-validation of the 10,212-example corpus fell from 94.64 to 94.37 % in Chinese and from
    93.13 to 92.96 % in English)."""

    def __init__(self) -> None:
        self.chars = _grams(1, 3)
        self.words = _tfidf(analyzer="word", token_pattern=_WORD, ngram_range=(1, 2))
        self.zh = _tfidf(analyzer=zh_words)
        self.denied = _grams(1, 3)
        self.channels = {c.value: i for i, c in enumerate(sorted(Channel))}
        # None until fitted, and when the corpus has no Latin words or subjects twice
        self.latin: TfidfVectorizer | None = None
        self.subject: TfidfVectorizer | None = None
        self.sounds: TfidfVectorizer | None = None

    def fit(self, samples: Sequence[Sample]) -> "Features":
        kept = [denied(s.text)[0] for s in samples]
        for v in (self.chars, self.words, self.zh):
            v.fit(kept)
        # The denied words' n-grams are those of whole texts: a corpus may deny nothing twice.
        self.denied.fit([s.text for s in samples])
        self.latin = _fitted(_grams(4, 5), map(_latin, kept))
        subjects = (_subject(s.text) for s in samples)
        self.subject = _fitted(_grams(1, 3), subjects)
        self.sounds = _fitted(_tfidf(token_pattern=r"\S+", ngram_range=(1, 2)), map(sounds, kept))
        return self

    @property
    def shared(self) -> int:
        """How many of the matrix's columns, from the first, the priority models read: the cues,
        then the columns every model reads."""
        vocabularies = (self.chars, self.words, self.zh, self.denied)
        return CUES + sum(len(v.vocabulary_) for v in vocabularies) + len(self.channels)

    def transform(self, samples: Sequence[Sample]) -> sp.csr_matrix:
        """The cues first, then the shared columns, then those only the category model reads."""
        kept, gone = zip(*(denied(s.text) for s in samples), strict=True)
        rows = np.arange(len(samples))
        cols = [self.channels.get(s.channel, self.channels["service"]) for s in samples]
        channel = sp.csr_matrix(
            (np.ones(len(samples), dtype=np.float32), (rows, cols)),
            shape=(len(samples), len(self.channels)),
        )
        given = np.array([standing(s.text) for s in samples], dtype=np.float32)
        cues = sp.csr_matrix(given.reshape(len(samples), CUES))
        parts = [v.transform(kept) for v in (self.chars, self.words, self.zh)]
        latin = _transform(self.latin, [_latin(t) for t in kept])
        subject = _transform(self.subject, [_subject(s.text) for s in samples])
        heard = _transform(self.sounds, [sounds(t) for t in kept])
        denied_ = self.denied.transform(gone)
        return sp.hstack([cues, *parts, denied_, channel, latin, subject, heard], format="csr")


def _fitted(vectorizer: TfidfVectorizer, texts: Iterable[str]) -> TfidfVectorizer | None:
    """`vectorizer` fitted on `texts`; None when they hold no term often enough to keep."""
    try:
        return vectorizer.fit(list(texts))
    except ValueError:  # scikit-learn's "empty vocabulary"
        return None


def _transform(vectorizer: TfidfVectorizer | None, texts: list[str]) -> sp.csr_matrix:
    if vectorizer is None:
        return sp.csr_matrix((len(texts), 0), dtype=np.float32)
    return vectorizer.transform(texts)


# The category is the logistic regression's probabilities blended with a complement naive
# Bayes's on the same features, at this weight: on the first writers' cross-validation (7,212-
# example corpus) it took category accuracy from zh 93.7 / en 91.4 / mixed 94.9 % to 94.2 /
# 92.3 / 95.3 % (0.35: 94.4 / 92.2 / 95.6; naive Bayes alone 90.6 / 86.8 / 94.9). Naive Bayes
# weighs every word's evidence, where the regression leans on a few: the two err apart. At a
# fifth, the regression's probabilities (the confidence the review flag reads) still lead.
NAIVE_BAYES_WEIGHT = 0.2
NAIVE_BAYES_ALPHA = 0.1


def _classifier(c: float = 20.0) -> LogisticRegression:
    # lbfgs is deterministic; balanced weights keep the rarer labels (urgent) from being
    # drowned by the common ones.
    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


# Then a ridge classifier's (least squares, each category against the rest) decision values,
# as probabilities by a softmax at RIDGE_TEMPERATURE, blended in at RIDGE_WEIGHT. Least squares
# weighs the n-grams otherwise than the regression's log loss, and errs on other tickets. Chosen
# from 27 settings (alpha 0.3 / 0.6 / 1, weight 0.2 / 0.3 / 0.4, temperature 0.1 / 0.2 / 0.3) by
# the 10,212-example corpus's 5-fold cross-validations: 26 gained in both languages on both
# (alpha 1, weight 0.4, temperature 0.1 lost 0.13 points of Chinese on the first writers'). Category
# accuracy without it and with it: over the whole corpus zh 94.58 -> 94.96 %, en 93.13 ->
# 93.90 %, mixed 96.87 -> 97.08 %; scored on the first writers' examples zh 95.28 -> 95.53 %,
# en 93.14 -> 93.34 %, mixed 96.50 -> 97.43 %.
RIDGE_ALPHA = 0.6
RIDGE_WEIGHT = 0.3
RIDGE_TEMPERATURE = 0.2


class Blend:
    """The category probabilities: the regression's blended with naive Bayes's, then with the
    ridge classifier's. Each of the three scores a ticket by the product of its features with a
    weight per category, so the artifact keeps their weights side by side (float32, as the
    features) and a batch takes one sparse product, not three predicts that each read it: 0.014
    against 0.041 ms a ticket (batch of 500, one run). Tested equal to the three models' own
    predict_proba and decision_function."""

    def __init__(
        self, category: LogisticRegression, bayes: ComplementNB, ridge: RidgeClassifier
    ) -> None:
        classes = list(category.classes_)
        if not classes == list(bayes.classes_) == list(ridge.classes_):
            raise ValueError("the category models disagree on the categories' order")
        if len(classes) < 3:  # two classes have one weight column, not one each
            raise ValueError("the corpus needs three categories or more")
        self.classes = classes
        self.weights = np.hstack(
            [category.coef_.T, bayes.feature_log_prob_.T, ridge.coef_.T], dtype=np.float32
        )
        self.regression_intercept = category.intercept_
        self.ridge_intercept = ridge.intercept_

    def __call__(self, worded: sp.csr_matrix) -> np.ndarray:
        n = len(self.classes)
        scores = np.asarray(worded @ self.weights, dtype=np.float64)
        lr_p = softmax(scores[:, :n] + self.regression_intercept, axis=1)  # multinomial
        nb_p = softmax(scores[:, n : 2 * n], axis=1)  # naive Bayes's joint log-likelihoods
        ridge = scores[:, 2 * n :] + self.ridge_intercept
        linear = (1 - NAIVE_BAYES_WEIGHT) * lr_p + NAIVE_BAYES_WEIGHT * nb_p
        ridge_p = softmax(ridge / RIDGE_TEMPERATURE, axis=1)
        return (1 - RIDGE_WEIGHT) * linear + RIDGE_WEIGHT * ridge_p


def _with_category(shared: sp.csr_matrix, cat_p: np.ndarray) -> sp.csr_matrix:
    """What the blocking model reads: the shared columns and the category probabilities (a
    certificate not yet sent blocks no class in an hour, whatever its words; with them, on the
    10,212-example corpus's cross-validation at 0.5 / 0.3: 2 fewer false alarms over the whole
    corpus, 1 more urgent ticket of the first writers' 174 found)."""
    return sp.hstack([shared, sp.csr_matrix(cat_p.astype(np.float32))], format="csr")


# The urgency model is regularised harder than the category model: it learns a few hundred
# urgent and near-miss texts, and at C=20 it clung to their words; at 5 it ranks the first
# writers' live compromises above their past ones better (cross-validation, urgent recall at
# 90 % precision: 172/174 against 170/174).
URGENCY_C = 5.0


@dataclass(frozen=True, slots=True)
class Prediction:
    category: Category
    confidence: float  # the category model's top probability
    said: Priority  # what the text alone says of the priority
    urgent_p: float  # the text model's probability of urgent
    blocks_p: float  # the probability that the problem keeps the learner from a class or exam
    second: Category  # the next most probable category
    second_p: float
    live_p: float = 0.0  # the probability that it is about the account or money


class Models:
    """Three models over one feature matrix (a batch costs one transform, the category blend's
    one product and two predicts): the category (a regression, naive Bayes and a ridge
    classifier, blended); what the text says of the priority without any class or exam in sight (urgent for a live compromise,
    low for a prevention question); and whether the problem blocks a class or exam close at
    hand ("the classroom won't load" does, "I have a class soon, but by the way my old
    invoice..." does not), which reads the category's probabilities too."""

    def __init__(self, features: Features, category: Blend, urgency: Any, blocks: Any) -> None:
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
        labels = [c.value for c in categories]
        worded = x[:, CUES:]
        category = Blend(
            _classifier().fit(worded, labels),
            ComplementNB(alpha=NAIVE_BAYES_ALPHA).fit(worded, labels),
            RidgeClassifier(alpha=RIDGE_ALPHA, class_weight="balanced").fit(worded, labels),
        )
        known = [(i, p.value) for i, p in enumerate(text_priority) if p is not None]
        shared = x[:, : features.shared]
        urgency = _classifier(URGENCY_C).fit(shared[[i for i, _ in known]], [p for _, p in known])
        told = [(i, b) for i, b in enumerate(blocks) if b is not None]
        if len({b for _, b in told}) < 2:
            raise ValueError(
                "the corpus needs examples with a class or exam soon that the problem blocks "
                "and ones it does not"
            )
        rows = [i for i, _ in told]
        cat_p = category(worded[rows])
        blocking = _classifier().fit(_with_category(shared[rows], cat_p), [b for _, b in told])
        return cls(features, category, urgency, blocking)

    def predict(self, samples: Sequence[Sample], *, urgent_at: float) -> list[Prediction]:
        """Each sample's category with its confidence, and what its text says of the priority:
        urgent whenever the urgent probability reaches `urgent_at` (missing an urgent ticket
        costs more than a false alarm), else the most probable level."""
        if not samples:
            return []
        x = self.features.transform(samples)
        shared = x[:, : self.features.shared]
        worded = x[:, CUES:]
        cat_p = self.category(worded)
        urg_p = self.urgency.predict_proba(shared)
        blk_p = self.blocks.predict_proba(_with_category(shared, cat_p))
        blk_p = blk_p[:, list(self.blocks.classes_).index(True)]
        cats = [Category(c) for c in self.category.classes]
        live = [i for i, c in enumerate(cats) if c in LIVE_COMPROMISE]
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
                    float(cp[live].sum()),
                )
            )
        return out
