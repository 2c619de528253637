"""Per-token outputs -> one vector per text: mean, CLS, last token, SPLADE max; L2 normalise."""

from __future__ import annotations

import numpy as np


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average of the token vectors the attention mask keeps."""
    weights = mask[..., None].astype(hidden.dtype)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    return summed / counts


def cls_pool(hidden: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The first token's vector."""
    return hidden[:, 0]


def last_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The last real token's vector (right padding: the one before the first pad)."""
    last = np.maximum(mask.sum(axis=1).astype(np.int64) - 1, 0)
    return hidden[np.arange(len(hidden)), last]


def splade_pool(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """SPLADE term weights: max over the sequence of log(1 + ReLU(logits)), masked."""
    weights = np.log1p(np.maximum(logits, 0.0))
    weights *= mask[..., None].astype(weights.dtype)
    return weights.max(axis=1)


def normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, eps)


POOLERS = {"mean": mean_pool, "cls": cls_pool, "last": last_pool, "splade": splade_pool}


def pool(name: str, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dispatch on the pooling a model's description names. Already pooled (2-D) outputs pass."""
    if hidden.ndim == 2:
        return hidden
    try:
        return POOLERS[name](hidden, mask)
    except KeyError:
        raise ValueError(f"unknown pooling {name!r}; kettle has {sorted(POOLERS)}") from None
