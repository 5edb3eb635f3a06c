"""Character n-grams within word boundaries (scikit-learn's `char_wb`), counted with numpy.

scikit-learn cuts every n-gram out of the text as a Python string and looks it up in a dict; for
triage's four character vectorizers that was most of a ticket's CPU. `CharGrams` is a
`TfidfVectorizer` that fits as scikit-learn does (training is not the hot path) and transforms a
batch at once: the batch's padded words as one array of code points, each n-gram as one integer
(its characters' places in the vocabulary's alphabet, side by side), looked up by a binary search
in the vocabulary's sorted integers. The counts, and so the features, are scikit-learn's own
(`tests/unit/test_triage_grams.py` compares them on the corpus)."""

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

# Between two padded words: no n-gram is counted across it (its place is 0, in no alphabet).
_GAP = "\0"
_PAD = f" {_GAP} "


class CharGrams(TfidfVectorizer):
    """`TfidfVectorizer(analyzer="char_wb", ...)` whose transform counts with numpy."""

    def fit(self, raw_documents: Iterable[str], y: Any = None) -> "CharGrams":
        if self.analyzer != "char_wb":
            raise ValueError(f"CharGrams counts char_wb n-grams, not {self.analyzer!r}")
        super().fit(raw_documents, y)
        self._index()
        return self

    def fit_transform(self, raw_documents: Iterable[str], y: Any = None) -> sp.csr_matrix:
        documents = list(raw_documents)
        self.fit(documents)
        return self.transform(documents)

    def _index(self) -> None:
        """The alphabet's places (1 on) by code point, and the vocabulary as sorted integers."""
        alphabet = sorted({c for gram in self.vocabulary_ for c in gram})
        self._bits = len(alphabet).bit_length()
        # scikit-learn's own transform when an n-gram needs more than 63 bits, or when the gap
        # itself is in the vocabulary (texts with NUL characters in them, twice)
        self._packed = self._bits * self.ngram_range[1] <= 63 and _GAP not in alphabet
        if not getattr(self, "_packed", False):  # unfitted: scikit-learn says so
            return
        places = np.zeros(max(map(ord, alphabet), default=0) + 1, dtype=np.int64)
        places[[ord(c) for c in alphabet]] = np.arange(1, len(alphabet) + 1)
        self._places = places
        grams = list(self.vocabulary_)
        keys = np.array([self._key(g) for g in grams], dtype=np.int64)
        order = np.argsort(keys)
        self._keys = keys[order]
        self._columns = np.array([self.vocabulary_[g] for g in grams], dtype=np.int64)[order]

    def _key(self, gram: str) -> int:
        """The n-gram's integer; -1 when a character of it is in no n-gram of the vocabulary."""
        key = 0
        for c in gram:
            place = int(self._places[ord(c)]) if ord(c) < len(self._places) else 0
            if not place:
                return -1
            key = key << self._bits | place
        return key

    def _place(self, text: str) -> np.ndarray:
        data = text.encode("utf-32-le", errors="surrogatepass")
        points = np.frombuffer(data, dtype=np.uint32).astype(np.int64)
        known = points < len(self._places)
        out = np.zeros(len(points), dtype=np.int64)
        out[known] = self._places[points[known]]
        return out

    def counts(self, documents: list[str]) -> sp.csr_matrix:
        """The documents' n-gram counts (scikit-learn's CountVectorizer.transform)."""
        low, high = self.ngram_range
        documents = list(map(self.build_preprocessor(), documents))
        # " w1 \0 w2 \0": each word padded with spaces, a gap after it
        words = [_PAD.join(d.split()) for d in documents]
        padded = [f" {w} {_GAP}" if w else "" for w in words]
        places = self._place("".join(padded))
        doc_of = np.repeat(np.arange(len(documents)), [len(p) for p in padded])
        doc_parts, key_parts = [], []
        for n in range(low, high + 1):
            if len(places) < n:
                break
            span = len(places) - n + 1
            key = places[:span].copy()
            whole = places[:span] > 0
            for k in range(1, n):
                key = key << self._bits | places[k : k + span]
                whole &= places[k : k + span] > 0
            doc_parts.append(doc_of[:span][whole])
            key_parts.append(key[whole])
        # scikit-learn counts a word shorter than the shortest n-gram once, whole.
        if low > 3:
            for d, document in enumerate(documents):
                for w in document.split():
                    if len(w) + 2 < low:
                        doc_parts.append(np.array([d]))
                        key_parts.append(np.array([self._key(f" {w} ")], dtype=np.int64))
        docs = np.concatenate(doc_parts) if doc_parts else np.zeros(0, dtype=np.int64)
        keys = np.concatenate(key_parts) if key_parts else np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        at[at == len(self._keys)] = 0
        found = self._keys[at] == keys if len(self._keys) else np.zeros(len(keys), dtype=bool)
        x = sp.csr_matrix(
            (np.ones(int(found.sum()), dtype=self.dtype), (docs[found], self._columns[at[found]])),
            shape=(len(documents), len(self.vocabulary_)),
        )
        x.sum_duplicates()
        return x

    def transform(self, raw_documents: Iterable[str]) -> sp.csr_matrix:
        if not getattr(self, "_packed", False):  # unfitted: scikit-learn says so
            return super().transform(raw_documents)
        x = self.counts(list(raw_documents))
        if self.sublinear_tf:
            np.log(x.data, x.data)
            x.data += 1.0
        if self.use_idf:
            x.data *= self.idf_[x.indices].astype(x.dtype)
        return normalize(x, norm=self.norm, copy=False) if self.norm and x.shape[0] else x
