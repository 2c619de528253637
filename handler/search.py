"""POST /search: a query against the vectors the sinks hold (the backends; the request and
response models are in handler.schemas, so the route registers without importing the sinks).

    {"query": str, "top_k": 10, "mode": "dense" | "sparse" | "hybrid", "rerank": false,
     "candidates": int?, "filter": {"source_prefix": str}?}
    -> {"results": [{"id", "score", "source_key", "start", "end", "text"}], "model", "mode"}

- dense: S3 Vectors QueryVectors, or Qdrant's ``dense`` vectors (cosine; score = similarity);
- sparse: Qdrant's ``sparse`` vectors (BM25 with Qdrant's IDF modifier, or SPLADE);
- hybrid: dense + sparse candidates fused server-side by Qdrant (RRF prefetches);
- rerank: the configured cross-encoder (KETTLE_RERANK_MODEL) reorders the ``candidates`` best
  (default 4 x top_k, at least 20) and its sigmoid score is the result's score.

A mode (or rerank) the configured sinks and models cannot serve is an ApiError
``mode_not_available`` / ``rerank_not_available`` (422) that names the sink and the model it needs. The query is embedded with the model the index was built with
(KETTLE_MODEL), with its query prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from handler.errors import ApiError
from handler.models import MODELS
from handler.settings import MAX_TOP_K, Settings
from handler.sinks import open_sink
from handler.sinks.base import Hit

if TYPE_CHECKING:  # the body arrives checked (handler.validation), as the model or its fields
    from handler.schemas import SearchRequest

SPARSE_NEEDS = "SPARSE_VECTORS=bm25, or SPARSE_VECTORS=model with KETTLE_SPARSE_MODEL"


def _unservable(mode: str, settings: Settings, needs: str) -> ApiError:
    configured = ",".join(settings.vector_sinks)
    return ApiError(
        "mode_not_available",
        f'mode "{mode}" needs {needs}; this deployment has VECTOR_SINK={configured}, '
        f"KETTLE_MODEL={settings.model}",
        "mode",
    )


@contextmanager
def backend(name: str) -> Iterator[None]:
    """A failure of the search backend ``name`` (a refusal, throttling, a server that is down) as
    a 502 that names the dependency. Its own words stay in the log, with the request id the
    answer carries: an AWS error holds the account id, the role and the index ARN; a client
    error, the server's address."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        from handler.observability import logger

        logger.exception("search backend failed", extra={"backend": name})
        raise ApiError(
            "search_backend_error",
            f"the search backend ({name}) failed; the error is logged with this request's id",
        ) from exc


def _open(name: str, settings: Settings) -> Any:
    with backend(name):  # opening a qdrant sink may read its API key from SSM / Secrets Manager
        return open_sink(name, settings)


def search_sink(mode: str, settings: Settings) -> Any:
    """The configured sink that serves ``mode``; ApiError mode_not_available naming what it needs."""
    for name in settings.vector_sinks:
        if name == "files":
            continue
        if name == "s3vectors" and mode == "dense":
            return _open(name, settings)
        if name == "qdrant":
            if mode != "dense" and not settings.sparse_vectors:
                raise _unservable(
                    mode, settings, f"the qdrant sink with sparse vectors ({SPARSE_NEEDS})"
                )
            return _open(name, settings)
    if mode == "dense":
        raise _unservable(
            mode, settings, "VECTOR_SINK s3vectors or qdrant (files cannot be searched)"
        )
    raise _unservable(mode, settings, f"VECTOR_SINK qdrant with sparse vectors ({SPARSE_NEEDS})")


def _query_dense(settings: Settings, query: str) -> np.ndarray:
    model = MODELS.get("dense", settings)
    return np.asarray(next(iter(model.query_embed([query]))), np.float32)


def _query_sparse(settings: Settings, query: str) -> tuple[list[int], list[float]]:
    from handler.sparse_vectors import sparse_encoder, sparse_pairs

    encoder, _ = sparse_encoder(settings)
    if encoder is None:
        raise ApiError("mode_not_available", f"sparse search needs {SPARSE_NEEDS}", "mode")
    [pair] = sparse_pairs(encoder, [query], query=True)
    return pair


def _ranked(result: Any) -> list[tuple[int, float]]:
    """(index, score) best first from kettle's ``rank`` results (scores alone: input order)."""
    pairs: list[tuple[int, float]] = []
    for position, item in enumerate(list(result)):
        if isinstance(item, (int, float, np.number)):
            pairs.append((position, float(item)))
        else:
            pairs.append((int(item.index), float(item.score)))
    pairs.sort(key=lambda p: -p[1])
    return pairs


def _rerank(settings: Settings, query: str, hits: list[Hit]) -> list[Hit]:
    """Hits with text reordered by the cross-encoder (sigmoid scores); hits without text (too
    large for S3 Vectors' metadata) follow, in their first order."""
    model = MODELS.get("rerank", settings)
    with_text = [h for h in hits if h.text]
    if not with_text:
        return hits
    texts = [h.text or "" for h in with_text]
    ranked = _ranked(model.rank(query, texts, sigmoid=True))  # best first
    reordered = [
        Hit(h.id, score, h.source_key, h.start, h.end, h.text, h.doc_id)
        for h, score in ((with_text[i], s) for i, s in ranked)
    ]
    return reordered + [h for h in hits if not h.text]


def _query(
    sink: Any,
    request: SearchRequest,
    settings: Settings,
    dense: np.ndarray | None,
    fetch: int,
    candidates: int,
    prefix: str | None,
) -> list[Hit]:
    if sink.name == "s3vectors":
        with backend(sink.name):
            return sink.search_dense(dense, min(fetch, MAX_TOP_K), prefix)
    if request.mode != "dense":
        with backend(sink.name):
            has_sparse = sink.has_sparse()
        if not has_sparse:
            raise _unservable(
                request.mode,
                settings,
                f"a collection with sparse vectors (re-ingest with {SPARSE_NEEDS})",
            )
    sparse = _query_sparse(settings, request.query) if request.mode != "dense" else None
    with backend(sink.name):
        return sink.search(request.mode, fetch, dense, sparse, candidates, prefix)


def search(request: SearchRequest, settings: Settings) -> dict[str, Any]:
    """Run one search; the response body. ApiError for what the deployment cannot serve."""
    from handler.observability import timed

    with timed("SearchLatency"):
        return _search(request, settings)


def _search(request: SearchRequest, settings: Settings) -> dict[str, Any]:
    if request.rerank and not settings.models["rerank"]:
        raise ApiError(
            "rerank_not_available",
            "rerank needs a cross-encoder: set KETTLE_RERANK_MODEL (and bake it into the model layer)",
            "rerank",
        )
    sink = search_sink(request.mode, settings)
    want = request.top_k
    candidates = request.candidates or max(4 * want, 20)
    fetch = max(want, candidates) if (request.rerank or request.mode == "hybrid") else want
    prefix = request.filter.source_prefix if request.filter else None
    dense = _query_dense(settings, request.query) if request.mode != "sparse" else None
    hits = _query(sink, request, settings, dense, fetch, candidates, prefix)
    if request.rerank:
        hits = _rerank(settings, request.query, hits)
    results = [
        {
            "id": h.id,
            "score": round(float(h.score), 6),
            "source_key": h.source_key,
            "start": h.start,
            "end": h.end,
            "text": h.text,
        }
        for h in hits[:want]
    ]
    return {"results": results, "model": settings.model, "mode": request.mode}
