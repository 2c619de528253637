"""Dense text embeddings: one float32 vector per text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import Embedded, TextEncoder, TextKind
from kettle.pooling import normalize as unit
from kettle.pooling import pool
from kettle.registry import DEFAULT_MODEL


class TextEmbedding(TextEncoder):
    """Dense embeddings from a baked model.

    >>> model = TextEmbedding()  # sentence-transformers/all-MiniLM-L6-v2, baked under ./models
    >>> vectors = list(model.embed(["hello", "world"]))
    """

    kind = "dense"
    default_model = DEFAULT_MODEL

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    @property
    def query_prefix(self) -> str:
        return self.manifest.query_prefix

    @property
    def passage_prefix(self) -> str:
        return self.manifest.passage_prefix

    def _last_step(
        self, hidden: np.ndarray, mask: np.ndarray, normalize: bool | None = None
    ) -> np.ndarray:
        vectors = pool(self.manifest.pooling, hidden, mask).astype(np.float32, copy=False)
        if normalize is None:
            normalize = self.manifest.normalize
        return unit(vectors).astype(np.float32, copy=False) if normalize else vectors

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        **kwargs: Any,
    ) -> Iterator[np.ndarray]:
        """float32 vectors in input order, from any iterable, in bounded memory.

        ``normalize``: unit vectors (True), raw pooled ones (False), or as the model is baked
        (None). ``truncate=False``: a text past max_length raises TextTooLongError instead of
        being cut (texts are checked one window of 2,048 at a time, before that window runs).
        """
        return self._stream(
            documents,
            batch_size,
            partial(self._last_step, normalize=normalize),
            truncate=truncate,
            kind=kwargs.pop("kind", None),
        )

    def embed_with_usage(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind | None = None,
        normalize: bool | None = None,
        truncate: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Embedded[np.ndarray]:
        """Vectors ``[n, dim]`` float32 and tokens per text, from one tokenization.

        ``kind`` applies the model's query or passage prefix. Every text is checked (and, with
        ``truncate=False``, measured) before any is embedded.
        """
        vectors, counts = self._usage(
            texts,
            batch_size,
            partial(self._last_step, normalize=normalize),
            kind=kind,
            truncate=truncate,
        )
        dim = self.embedding_size
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        return Embedded(matrix.astype(np.float32, copy=False), counts)

    def query_embed(
        self, query: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[np.ndarray]:
        """Embed search queries (the model's query prefix applied)."""
        return self.embed(query, batch_size, kind="query", **kwargs)

    def passage_embed(
        self, texts: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[np.ndarray]:
        """Embed documents to be searched (the model's passage prefix applied)."""
        return self.embed(texts, batch_size, kind="passage", **kwargs)
