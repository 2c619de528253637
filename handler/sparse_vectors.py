"""The sparse vectors a deployment writes beside its dense ones (SPARSE_VECTORS: bm25, or the
sparse model): ingestion encodes passages with them and /search encodes queries, so both import
them from here."""

from __future__ import annotations

from typing import Any

import numpy as np

from handler.models import MODELS, model_summary
from handler.settings import Settings

_BM25: list[Any] = []


def bm25() -> Any:
    """kettle's BM25 (Qdrant's tokenizer and hashing; the IDF is Qdrant's modifier)."""
    if not _BM25:
        from kettle.bm25 import Bm25

        _BM25.append(Bm25())
    return _BM25[0]


BM25_SUMMARY = {"name": "bm25", "kind": "sparse", "fingerprint": "bm25:english:k1.2:b0.75"}


def sparse_encoder(settings: Settings) -> tuple[Any | None, dict[str, Any] | None]:
    """(the sparse encoder, its summary) SPARSE_VECTORS asks for, or (None, None)."""
    if settings.sparse_vectors == "bm25":
        return bm25(), BM25_SUMMARY
    if settings.sparse_vectors == "model" and settings.models["sparse"]:
        model = MODELS.get("sparse", settings)
        return model, model_summary(model, with_dim=False)
    return None, None


def sparse_pairs(
    encoder: Any, texts: list[str], query: bool = False
) -> list[tuple[list[int], list[float]]]:
    if not texts:
        return []
    embed = getattr(encoder, "query_embed" if query else "passage_embed", encoder.embed)
    return [(np.asarray(e.indices).tolist(), np.asarray(e.values).tolist()) for e in embed(texts)]
