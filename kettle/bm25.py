"""BM25 as sparse vectors, in the form Qdrant indexes them (no model, no ONNX session).

Terms: the text's characters that are neither word nor space become spaces, the text is
lowercased and split into runs of word characters (``\\w+``); stopwords (matched before
stemming) and tokens longer than ``token_max_length`` are dropped; the rest are stemmed with the
Snowball stemmer of ``language``.

Ids: ``abs(murmur3_32(term))``: MurmurHash3 x86 32-bit, seed 0, of the term's UTF-8 bytes, read
as a signed int, absolute value, so ids lie in 0..2**31 (int64 arrays). Qdrant's BM25 (server,
Edge) and FastEmbed's ``Qdrant/bm25`` use this scheme, so their vectors and kettle's mix.

Weights: a document term gets ``tf * (k + 1) / (tf + k * (1 - b + b * len / avg_len))`` with
``len`` the document's number of terms; a query term gets 1. The IDF is left to Qdrant (a sparse
vector with ``modifier="idf"``), which computes it per collection. Without Qdrant, ``fit(corpus)``
computes Qdrant's IDF, ``ln(1 + (N - df + 0.5) / (df + 0.5))``, locally, and query terms then
weigh their IDF: ``query.dot(document)`` is the BM25 score.

Stemmer: ``py-rust-stemmers`` (MIT, from Qdrant), the stemmer FastEmbed and Qdrant's own BM25
use. The pure-Python ``snowballstemmer`` 3.x implements newer Snowball algorithms
("university" -> "universiti" rather than "univers", "added" -> "add" rather than "ad"; 108 of
46,745 English words differ, 9,356 Dutch ones), and a different stem is a different hash: its
vectors would not match the ones Qdrant makes. py-rust-stemmers is also about 3x faster.

Stopwords: kettle ships the English list (NLTK's English stopwords, the list in Qdrant's
``stop_words/english.rs`` and in FastEmbed's ``Qdrant/bm25`` ``english.txt``). For another
language pass ``stopwords=`` (e.g. the lists of the ``stop-words`` package); without them no
stopwords are removed for that language, where FastEmbed would use its per-language file.

Differences from FastEmbed 0.9.1 ``Bm25`` (checked on the texts of
``tests/fixtures/bm25_fastembed.json``; identical ids and values up to float32 otherwise):
- indices are sorted ascending and values float32 (FastEmbed: first-seen order, float64; query
  values int64 ones). The same sparse vector for Qdrant.
- two stems whose ids collide (``kitchen``/``prostaglandin``-like pairs; about one pair in 2**31)
  are one term with their counts added; FastEmbed 0.9.1 keeps the weight of whichever it saw
  last, so its vector depends on word order.
- no stopwords for languages other than English unless given (see above).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from kettle.errors import InvalidTextError, text_items
from kettle.sparse import SparseEmbedding

BM25_MODEL_NAME = "Qdrant/bm25"  # FastEmbed's and Qdrant's name for this scheme
BM25_EXTRA_HINT = "kettle's BM25 needs its extra: pip install 'kettle[bm25]'"

# Snowball stemmers of py-rust-stemmers (FastEmbed's supported_languages for Qdrant/bm25).
LANGUAGES = (
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
)

# NLTK's English stopword list (179 words), as Qdrant and FastEmbed's Qdrant/bm25 use it.
# Entries with an apostrophe never match a term (terms are split at it) but are kept so the list
# stays the published one.
ENGLISH_STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them their
    theirs themselves what which who whom this that that'll these those am is are was were be
    been being have has had having do does did doing a an the and but if or because as until
    while of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there when where why
    how all any both each few more most other some such no nor not only own same so than too
    very s t can will just don don't should should've now d ll m o re ve y ain aren aren't
    couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma
    mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren
    weren't won won't wouldn wouldn't
    """.split()
)
BUILTIN_STOPWORDS = {"english": ENGLISH_STOPWORDS}

_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]")
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lowercased runs of word characters (punctuation splits words, as in FastEmbed)."""
    return _WORD.findall(_NOT_WORD_OR_SPACE.sub(" ", text).lower())


def qdrant_idf(n_docs: int, df: int) -> float:
    """Qdrant's IDF: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class Bm25:
    """BM25 sparse vectors for Qdrant (``modifier="idf"``) or for local scoring after ``fit``.

    >>> bm25 = Bm25()
    >>> [doc] = bm25.embed(["Kettles boil water."])
    >>> [query] = bm25.query_embed("boiling kettle")
    """

    def __init__(
        self,
        language: str | None = "english",
        k: float = 1.2,
        b: float = 0.75,
        avg_len: float = 256.0,
        stopwords: Iterable[str] | None = None,
        token_max_length: int = 40,
    ) -> None:
        """``language=None``: no stemming and no built-in stopwords (Qdrant's "none").
        ``stopwords``: replaces the built-in list (an empty list removes none)."""
        try:
            import mmh3
            from py_rust_stemmers import SnowballStemmer
        except ImportError as exc:
            raise ImportError(f"{BM25_EXTRA_HINT} ({exc})") from None
        if language is not None and language not in LANGUAGES:
            raise ValueError(
                f"language {language!r} has no Snowball stemmer here; use one of "
                f"{', '.join(LANGUAGES)}, or language=None"
            )
        if k < 0 or not 0 <= b <= 1 or avg_len <= 0 or token_max_length < 1:
            raise ValueError(
                f"need k >= 0, 0 <= b <= 1, avg_len > 0, token_max_length >= 1; got k={k}, "
                f"b={b}, avg_len={avg_len}, token_max_length={token_max_length}"
            )
        if isinstance(stopwords, str):
            raise TypeError("stopwords is a str; pass a list or set of words")
        self.language = language
        self.k, self.b, self.avg_len = float(k), float(b), float(avg_len)
        self.token_max_length = token_max_length
        if stopwords is None:
            stopwords = BUILTIN_STOPWORDS.get(language or "", ())
        self.stopwords = frozenset(w.lower() for w in stopwords)
        self._hash = mmh3.hash
        self._stemmer = SnowballStemmer(language) if language else None
        self._stems: dict[str, str] = {}
        self._df: Counter[int] | None = None
        self._n_docs = 0

    model_name = BM25_MODEL_NAME

    @classmethod
    def from_fastembed(
        cls,
        model_name: str = BM25_MODEL_NAME,
        cache_dir: str | None = None,
        k: float = 1.2,
        b: float = 0.75,
        avg_len: float = 256.0,
        language: str = "english",
        token_max_length: int = 40,
        disable_stemmer: bool = False,
        stopwords: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> Bm25:
        """FastEmbed's ``SparseTextEmbedding("Qdrant/bm25", ...)`` arguments (threads, providers
        and the like accepted, without effect: BM25 needs no model). ``disable_stemmer`` keeps
        the language's stopwords and stems nothing, as FastEmbed does."""
        if stopwords is None:
            stopwords = BUILTIN_STOPWORDS.get(language or "", ())
        model = cls(
            language=None if disable_stemmer else language,
            k=k,
            b=b,
            avg_len=avg_len,
            stopwords=stopwords,
            token_max_length=token_max_length,
        )
        model.model_name = model_name
        return model

    # ------------------------------------------------------------------ terms and ids
    def terms(self, text: str) -> list[str]:
        """The text's terms in order: split, stopwords and long tokens dropped, stemmed."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        out = []
        for word in words(text):
            if word in self.stopwords or len(word) > self.token_max_length:
                continue
            stem = self._stem(word)
            if stem:
                out.append(stem)
        return out

    def _stem(self, word: str) -> str:
        if self._stemmer is None:
            return word
        stem = self._stems.get(word)
        if stem is None:
            if len(self._stems) > 500_000:  # a bounded cache
                self._stems.clear()
            stem = self._stems[word] = self._stemmer.stem_word(word)
        return stem

    def token_id(self, term: str) -> int:
        """The sparse index of a term: abs of its signed 32-bit MurmurHash3 (seed 0)."""
        return abs(self._hash(term))

    def token_count(self, texts: str | Iterable[str], batch_size: int = 1024, **_: Any) -> int:
        """Number of terms in the texts (after stopwords), the ``len`` of the formula."""
        return sum(len(t) for t in self._each(texts, self.terms))

    # ------------------------------------------------------------------ vectors
    def _counts(self, text: str) -> tuple[Counter[int], int]:
        terms = self.terms(text)
        return Counter(self.token_id(t) for t in terms), len(terms)

    def _document(self, text: str) -> SparseEmbedding:
        counts, length = self._counts(text)
        norm = self.k * (1.0 - self.b + self.b * length / self.avg_len)
        return SparseEmbedding.from_dict(
            {i: tf * (self.k + 1.0) / (tf + norm) for i, tf in counts.items()}
        )

    def _query(self, text: str) -> SparseEmbedding:
        ids = set(self._counts(text)[0])
        if self._df is None:
            return SparseEmbedding.from_dict(dict.fromkeys(ids, 1.0))
        return SparseEmbedding.from_dict({i: self.idf(i) for i in ids})

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = 256,
        parallel: int | None = None,
    ) -> Iterator:
        """One SparseEmbedding per document (BM25 term-frequency weights), in input order.

        ``batch_size`` and ``parallel`` are FastEmbed's arguments, accepted and without effect:
        BM25 streams one text at a time, faster than worker processes could be fed."""
        return self._each(documents, self._document)

    def passage_embed(
        self, documents: str | Iterable[str], batch_size: int = 256, parallel: int | None = None
    ) -> Iterator:
        """Same as ``embed``."""
        return self.embed(documents, batch_size)

    def query_embed(
        self, query: str | Iterable[str], batch_size: int = 256, parallel: int | None = None
    ) -> Iterator:
        """One SparseEmbedding per query: weight 1 per distinct term (IDF once ``fit``)."""
        return self._each(query, self._query)

    @staticmethod
    def _each(texts: str | Iterable[str], fn) -> Iterator:
        for i, text in enumerate(text_items(texts)):
            if not isinstance(text, str):
                raise InvalidTextError(f"is {type(text).__name__}, not str", index=i)
            yield fn(text)

    # ------------------------------------------------------------------ local IDF
    def fit(self, corpus: Iterable[str], set_avg_len: bool = False) -> Bm25:
        """Count document frequencies in ``corpus`` so queries carry Qdrant's IDF.

        ``set_avg_len=True`` also sets ``avg_len`` to the corpus' mean number of terms (embed
        the documents after fitting then). Returns self.
        """
        df: Counter[int] = Counter()
        n = total = 0
        for counts, length in self._each(corpus, self._counts):
            df.update(counts.keys())
            n += 1
            total += length
        self._df, self._n_docs = df, n
        if set_avg_len and n and total:
            self.avg_len = total / n
        return self

    @property
    def n_docs(self) -> int:
        """Documents seen by ``fit`` (0 before)."""
        return self._n_docs

    def idf(self, token: int | str) -> float:
        """Qdrant's IDF of a term or term id over the fitted corpus."""
        if self._df is None:
            raise RuntimeError("no IDF yet: call fit(corpus) first, or let Qdrant compute it")
        token_id = self.token_id(token) if isinstance(token, str) else int(token)
        return qdrant_idf(self._n_docs, self._df.get(token_id, 0))

    def score(self, query: str, documents: Iterable[str]) -> np.ndarray:
        """BM25 scores of ``documents`` for ``query`` (needs ``fit``): query IDF . document TF."""
        if self._df is None:
            raise RuntimeError("score needs the IDF: call fit(corpus) first")
        [q] = self.query_embed(query)
        return np.array([q.dot(d) for d in self.embed(documents)], dtype=np.float64)
