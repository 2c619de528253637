"""One model on one retrieval set: embed the corpus (streamed), rank each query, time it.

Dense models rank by cosine between ``query_embed`` and ``passage_embed`` vectors (the model's
own prefixes); sparse models by the dot product of their term weights. A reranker rescores each
query's top ``depth`` passages. A passage whose id is the query's id is left out of that query's
ranking, as BEIR's ``EvaluateRetrieval.evaluate`` does by default (``ignore_identical_ids``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kettle.evaluation.data import BeirSet
from kettle.evaluation.metrics import evaluate, top_indices
from kettle.manifest import MANIFEST_NAME
from kettle.store import BakedModel, bake_size_gb, find_model, list_baked, load_bake

LATENCY_QUERIES = 50  # queries timed one at a time for query_ms_p50
SCORE_BLOCK = 1 << 24  # scores per block of queries x passages (64 MB of float32)


def resolve(spec: str, models_dir: str | os.PathLike | None = None) -> BakedModel:
    """A ``--model``: the path of a bake folder, else a model name found as kettle finds bakes."""
    path = Path(spec).expanduser()
    if (path / MANIFEST_NAME).is_file():
        return load_bake(path)
    if path.is_dir():  # a models folder rather than one bake in it
        inside = list_baked(path)
        hint = f"; it holds {', '.join(inside)}: --models-dir {spec} --model NAME" if inside else ""
        raise ValueError(f"--model {spec}: a folder without {MANIFEST_NAME}, so not a bake{hint}")
    return find_model(spec, models_dir)


def precision(baked: BakedModel) -> str:
    """The precision column: fp32, or the int8 scheme the bake recorded (int8, int8-mixed, ...)."""
    q = baked.manifest.quantization
    if not q or q.get("weight_type") == "float32":
        return "fp32"
    return str(q.get("scheme") or "int8")


def _model(baked: BakedModel, threads: int | None, kind: str):
    from kettle.dense import TextEmbedding
    from kettle.rerank import TextCrossEncoder
    from kettle.sparse import SparseTextEmbedding

    cls = {"dense": TextEmbedding, "sparse": SparseTextEmbedding, "rerank": TextCrossEncoder}[kind]
    return cls(baked.manifest.name, threads=threads, specific_model_path=baked.path)


def check_kind(baked: BakedModel, spec: str, rerank: bool = False) -> None:
    kind = baked.manifest.kind
    if rerank and kind != "rerank":
        raise ValueError(f"--rerank {spec}: a {kind} model, not a rerank (cross-encoder) model")
    if not rerank and kind not in ("dense", "sparse"):
        hint = " (give it to --rerank)" if kind == "rerank" else ""
        raise ValueError(
            f"--model {spec}: eval ranks with dense and sparse models, not {kind}{hint}"
        )


def progress(stream: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    """``stream`` with a progress bar on stderr: tqdm when installed (kettle[eval]), else a
    line every tenth of ``total``."""
    try:
        from tqdm import tqdm
    except ImportError:
        step = max(1, total // 10)
        for done, item in enumerate(stream, 1):
            if done % step == 0 or done == total:
                print(f"{label}: {done}/{total} passages", file=sys.stderr, flush=True)
            yield item
        return
    yield from tqdm(stream, total=total, desc=label, unit=" passages", file=sys.stderr)


@dataclass
class Result:
    """One row of eval.json before it is rounded."""

    model: str
    bake: str
    precision: str
    metrics: dict[str, float]
    texts_per_s: float
    query_ms_p50: float
    bake_mb: float
    dim: int


class _Index:
    """The corpus's vectors and a scorer for a block of queries."""

    def __init__(self, kind: str, vectors: np.ndarray | list) -> None:
        self.kind = kind
        if kind == "dense":
            matrix = np.asarray(vectors, dtype=np.float32)  # normalised in place: one copy
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            self.matrix = matrix
            return
        # Sparse: postings (passage, weight) per term, so a query touches only its terms.
        n = np.fromiter((len(v.indices) for v in vectors), dtype=np.int64, count=len(vectors))
        docs = np.repeat(np.arange(len(vectors), dtype=np.int64), n)
        terms = np.concatenate([v.indices for v in vectors]).astype(np.int64)
        weights = np.concatenate([v.values for v in vectors]).astype(np.float32)
        order = np.argsort(terms, kind="stable")
        self.terms, starts = np.unique(terms[order], return_index=True)
        self.bounds = np.append(starts, len(order))
        self.docs, self.weights = docs[order], weights[order]
        self.size = len(vectors)

    def scores(self, queries: list) -> np.ndarray:
        if self.kind == "dense":
            q = np.stack(queries).astype(np.float32, copy=False)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            return q @ self.matrix.T
        out = np.zeros((len(queries), self.size), dtype=np.float32)
        for row, query in enumerate(queries):
            slots = np.searchsorted(self.terms, query.indices)
            for slot, term, w in zip(slots, query.indices, query.values, strict=True):
                if slot < len(self.terms) and self.terms[slot] == term:
                    lo, hi = self.bounds[slot], self.bounds[slot + 1]
                    out[row, self.docs[lo:hi]] += w * self.weights[lo:hi]
        return out


def _collect(stream: Iterable[Any], n: int, kind: str) -> np.ndarray | list:
    """The passages' vectors: dense ones straight into one [n, dim] float32 array (no list of
    n arrays beside it), sparse ones as a list."""
    if kind != "dense":
        return list(stream)
    matrix = None
    for i, vector in enumerate(stream):
        if matrix is None:
            matrix = np.empty((n, len(vector)), dtype=np.float32)
        matrix[i] = vector
    return matrix


def _rank(index: _Index, query_vectors: list, data: BeirSet, depth: int) -> dict[str, list[int]]:
    """Query id -> the positions of its ``depth`` best passages, best first."""
    qids = list(data.queries)
    position = {pid: i for i, pid in enumerate(data.corpus_ids)}
    block = max(1, SCORE_BLOCK // max(1, len(data)))
    ranked: dict[str, list[int]] = {}
    for start in range(0, len(qids), block):
        scores = index.scores(query_vectors[start : start + block])
        for row, qid in enumerate(qids[start : start + block]):
            same = position.get(qid)
            if same is not None:  # BEIR's ignore_identical_ids
                scores[row, same] = -np.inf
            top = top_indices(scores[row], data.corpus_ids, depth)
            ranked[qid] = [i for i in top if i != same]
    return ranked


def retrieve(
    kind: str, passages: list, queries: list, data: BeirSet, k: int = 10, depth: int = 100
) -> tuple[dict[str, float], dict[str, list[int]]]:
    """The metrics of ranking ``data``'s passages by their vectors for each query's vector
    (``queries`` in ``data.queries`` order), and each query's top ``depth`` positions."""
    ranked = _rank(_Index(kind, passages), queries, data, depth)
    ids = data.corpus_ids
    return evaluate({q: [ids[i] for i in r] for q, r in ranked.items()}, data.qrels, k), ranked


def _p50_ms(calls: Iterable[Callable[[], Any]]) -> float:
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def evaluate_model(
    baked: BakedModel,
    data: BeirSet,
    k: int = 10,
    threads: int | None = None,
    reranker: BakedModel | None = None,
    rerank_depth: int = 100,
    show_progress: bool = True,
) -> list[Result]:
    """The model's row (and, with ``reranker``, the reranked row) on ``data``."""
    kind = baked.manifest.kind
    model = _model(baked, threads, kind)
    model.load()
    texts: Iterable[str] = data.passages()
    started = time.perf_counter()
    stream = model.passage_embed(texts)
    if show_progress:
        stream = progress(stream, len(data), f"{baked.manifest.name} ({precision(baked)})")
    vectors = _collect(stream, len(data), kind)
    rate = len(vectors) / (time.perf_counter() - started)
    queries = list(data.queries.values())
    query_vectors = list(model.query_embed(queries))
    depth = max(100, k, rerank_depth if reranker else 0)
    metrics, ranked = retrieve(kind, vectors, query_vectors, data, k, depth)
    del vectors

    sample = queries[:LATENCY_QUERIES]
    next(iter(model.query_embed([sample[0]])))  # warm-up
    latency = _p50_ms((lambda q=q: next(iter(model.query_embed([q])))) for q in sample)
    size_mb = bake_size_gb(baked) * 1000
    results = [
        Result(
            baked.manifest.name,
            str(baked.path),
            precision(baked),
            metrics,
            rate,
            latency,
            size_mb,
            baked.manifest.dim,
        )
    ]
    if reranker is not None:
        results.append(
            _reranked(model, reranker, data, ranked, results[0], k, threads, rerank_depth)
        )
    return results


def _reranked(
    model: Any,
    reranker_bake: BakedModel,
    data: BeirSet,
    ranked: dict[str, list[int]],
    first: Result,
    k: int,
    threads: int | None,
    depth: int,
) -> Result:
    """The first stage's top ``depth`` per query rescored by the cross-encoder; its
    query_ms_p50 is one query embedded and its candidates reranked."""
    reranker = _model(reranker_bake, threads, "rerank")
    ids = data.corpus_ids
    rankings: dict[str, list[str]] = {}
    pairs_of: dict[str, list[tuple[str, str]]] = {}
    for qid, top in ranked.items():
        candidates = top[:depth]
        pairs = [(data.queries[qid], t) for t in data.passage_texts(candidates)]
        scores = reranker.rerank_pairs(pairs)
        order = top_indices(np.asarray(scores), [ids[i] for i in candidates], len(candidates))
        rankings[qid] = [ids[candidates[i]] for i in order]
        if len(pairs_of) < LATENCY_QUERIES:
            pairs_of[qid] = pairs
    metrics = evaluate(rankings, data.qrels, k)

    def one(qid: str) -> None:
        next(iter(model.query_embed([data.queries[qid]])))
        reranker.rerank_pairs(pairs_of[qid])

    latency = _p50_ms((lambda q=q: one(q)) for q in pairs_of)
    return Result(
        f"{first.model} + {reranker_bake.manifest.name}",
        first.bake,
        f"{first.precision} + {precision(reranker_bake)}",
        metrics,
        first.texts_per_s,
        latency,
        first.bake_mb + bake_size_gb(reranker_bake) * 1000,
        first.dim,
    )
