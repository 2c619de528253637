"""Hybrid retrieval in memory: dense and sparse candidates, reciprocal rank fusion, then rerank.

``reciprocal_rank_fusion`` merges ranked lists by rank alone (Cormack et al., 2009): an item
scores ``sum_r w_r / (k + rank_r)`` over the lists r it appears in (ranks from 1), so retrievers
whose scores live on different scales fuse without calibration. ``HybridIndex`` keeps a small
corpus in numpy (a dense matrix, an inverted index per sparse encoder) for tests, examples,
notebooks and Lambda-sized corpora; a vector database does the same at scale (Qdrant's
``prefetch`` + ``FusionQuery(RRF)`` + rerank).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kettle.bm25 import Bm25, qdrant_idf


def reciprocal_rank_fusion(
    rankings: Sequence[Iterable[Hashable]],
    k: float = 60.0,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> list[tuple[Hashable, float]]:
    """Fuse ranked lists of ids (best first) into ``[(id, score)]``, best first.

    An id repeated within one list counts at its first (best) rank; a list weighted 0 is left
    out. Ties keep the order in which ids were first met (list by list).
    """
    rankings = [list(r) for r in rankings]
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    for i, w in enumerate(weights):
        if w < 0:
            raise ValueError(f"weights[{i}] is negative ({w})")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight == 0:
            continue  # a list weighted 0 brings no ids either
        seen = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    fused = sorted(scores.items(), key=lambda pair: -pair[1])  # stable: first met wins ties
    return fused[:top_k] if top_k is not None else fused


@dataclass(frozen=True)
class SearchHit:
    """One result: the document's id and text, its final score (the reranker's when reranked,
    else the fused RRF score), the RRF score, and its rank (from 1) in each retriever's list."""

    id: Hashable
    score: float
    document: str
    fused: float
    ranks: dict[str, int] = field(default_factory=dict)


class _SparseIndex:
    """An inverted index: term id -> (document rows, weights)."""

    def __init__(self) -> None:
        self._rows: dict[int, list[int]] = defaultdict(list)
        self._weights: dict[int, list[float]] = defaultdict(list)

    def add(self, row: int, vector: Any) -> None:
        for term, weight in zip(vector.indices.tolist(), vector.values.tolist(), strict=True):
            self._rows[term].append(row)
            self._weights[term].append(weight)

    def df(self, term: int) -> int:
        return len(self._rows.get(term, ()))

    def scores(self, query: Mapping[int, float], n_rows: int) -> np.ndarray:
        out = np.zeros(n_rows, dtype=np.float64)
        for term, q in query.items():
            rows = self._rows.get(term)
            if rows:
                np.add.at(out, rows, q * np.asarray(self._weights[term]))
        return out


class HybridIndex:
    """Documents searchable by a dense model, any number of sparse encoders, and a reranker.

    >>> index = HybridIndex(dense=TextEmbedding(), sparse=[SparseTextEmbedding(), Bm25()])
    >>> index.add(["Paris is the capital of France.", "Kettles boil water."])
    >>> index.search("capital of France", top_k=1)[0].document

    Encoders are duck-typed: ``passage_embed(texts)`` / ``query_embed(text)`` yielding numpy
    vectors (dense) or ``SparseEmbedding`` (sparse); a reranker has kettle's ``rank``. Dense
    scores are dot products (cosine for normalised models). A ``Bm25`` encoder's query terms are
    weighted by the IDF of this index's documents, as Qdrant's ``modifier="idf"`` does.
    """

    def __init__(
        self,
        dense: Any | None = None,
        sparse: Any | Sequence[Any] = (),
        reranker: Any | None = None,
        rrf_k: float = 60.0,
    ) -> None:
        if not isinstance(sparse, Sequence):
            sparse = [sparse]
        if dense is None and not sparse:
            raise ValueError("a HybridIndex needs a dense model, a sparse encoder, or both")
        self.dense = dense
        self.reranker = reranker
        self.rrf_k = rrf_k
        self.retrievers: dict[str, Any] = {}
        if dense is not None:
            self.retrievers["dense"] = dense
        for encoder in sparse:
            self.retrievers[_unique(_name(encoder), self.retrievers)] = encoder
        self._sparse = {name: _SparseIndex() for name in self.retrievers if name != "dense"}
        self._dense_rows: list[np.ndarray] = []
        self._dense_matrix: np.ndarray | None = None
        self.ids: list[Hashable] = []
        self.documents: list[str] = []
        self._row_of: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.documents)

    def add(
        self, documents: Iterable[str], ids: Iterable[Hashable] | None = None, batch_size: int = 64
    ) -> list[Hashable]:
        """Embed and index ``documents``; ids default to their positions in the index."""
        documents = list(documents)
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise TypeError(f"documents[{i}] is {type(doc).__name__}, not str")
        start = len(self.documents)
        ids = list(range(start, start + len(documents))) if ids is None else list(ids)
        if len(ids) != len(documents):
            raise ValueError(f"{len(ids)} ids for {len(documents)} documents")
        seen: set[Hashable] = set()
        for i, doc_id in enumerate(ids):
            if doc_id in self._row_of or doc_id in seen:
                raise ValueError(f"ids[{i}] = {doc_id!r} is already in the index")
            seen.add(doc_id)
        if self.dense is not None and documents:
            self._dense_rows.append(
                np.stack(list(self.dense.passage_embed(documents, batch_size=batch_size)))
            )
            self._dense_matrix = None
        for name, index in self._sparse.items():
            vectors = self.retrievers[name].passage_embed(documents, batch_size=batch_size)
            for row, vector in enumerate(vectors, start=start):
                index.add(row, vector)
        for row, (doc_id, doc) in enumerate(zip(ids, documents, strict=True), start=start):
            self._row_of[doc_id] = row
            self.ids.append(doc_id)
            self.documents.append(doc)
        return ids

    def scores(self, query: str) -> dict[str, np.ndarray]:
        """Each retriever's score of every document for ``query`` (rows in index order)."""
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, not str")
        out: dict[str, np.ndarray] = {}
        n = len(self.documents)
        if self.dense is not None:
            if self._dense_matrix is None:
                self._dense_matrix = (
                    np.concatenate(self._dense_rows)
                    if self._dense_rows
                    else np.zeros((0, 0), np.float32)
                )
            q = next(iter(self.dense.query_embed([query])))
            out["dense"] = self._dense_matrix @ q if n else np.zeros(0)
        for name, index in self._sparse.items():
            encoder = self.retrievers[name]
            vector = next(iter(encoder.query_embed([query])))
            if isinstance(encoder, Bm25):
                weights = {t: qdrant_idf(n, index.df(t)) for t in vector.indices.tolist()}
            else:
                weights = vector.as_dict()
            out[name] = index.scores(weights, n)
        return out

    def search(
        self,
        query: str,
        top_k: int = 10,
        candidates: int = 50,
        rerank: bool | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> list[SearchHit]:
        """The ``top_k`` best documents for ``query``.

        Each retriever proposes its ``candidates`` best (sparse: score > 0); the lists are fused
        by RRF (``weights`` per retriever name, default 1); the reranker, when there is one and
        ``rerank`` is not False, rescores the ``candidates`` best fused documents.
        """
        if top_k < 1 or candidates < 1:
            raise ValueError(f"top_k and candidates must be at least 1, got {top_k}, {candidates}")
        if rerank and self.reranker is None:
            raise ValueError("rerank=True but this index has no reranker")
        unknown = set(weights or {}) - set(self.retrievers)
        if unknown:
            raise ValueError(
                f"weights for unknown retrievers {sorted(unknown)}; "
                f"this index has {sorted(self.retrievers)}"
            )
        lists: dict[str, list[int]] = {}
        for name, scores in self.scores(query).items():
            order = np.argsort(-scores, kind="stable")[:candidates]
            lists[name] = [int(r) for r in order if name == "dense" or scores[r] > 0]
        names = list(lists)
        fused = reciprocal_rank_fusion(
            [lists[n] for n in names],
            k=self.rrf_k,
            weights=[(weights or {}).get(n, 1.0) for n in names],
        )
        ranks = {n: {row: rank for rank, row in enumerate(lists[n], start=1)} for n in names}

        def hit(row: int, fused_score: float, score: float) -> SearchHit:
            where = {n: ranks[n][row] for n in names if row in ranks[n]}
            return SearchHit(self.ids[row], score, self.documents[row], fused_score, where)

        if self.reranker is None or rerank is False:
            return [hit(row, s, s) for row, s in fused[:top_k]]
        pool = fused[:candidates]
        results = self.reranker.rank(query, [self.documents[row] for row, _ in pool])
        return [hit(pool[r.index][0], pool[r.index][1], r.score) for r in results[:top_k]]


def _name(encoder: Any) -> str:
    if isinstance(encoder, Bm25):
        return "bm25"
    return f"sparse:{getattr(encoder, 'model_name', type(encoder).__name__)}"


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}#{n}", n + 1
    return candidate
