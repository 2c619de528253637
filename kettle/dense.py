"""Dense text embeddings: one float32 vector per text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import TextEncoder
from kettle.pooling import normalize, pool


class TextEmbedding(TextEncoder):
    """Dense embeddings from a baked model.

    >>> model = TextEmbedding()  # sentence-transformers/all-MiniLM-L6-v2, baked under ./models
    >>> vectors = list(model.embed(["hello", "world"]))
    """

    kind = "dense"

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    @property
    def query_prefix(self) -> str:
        return self.manifest.query_prefix

    @property
    def passage_prefix(self) -> str:
        return self.manifest.passage_prefix

    def _last_step(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        vectors = pool(self.manifest.pooling, hidden, mask).astype(np.float32, copy=False)
        return normalize(vectors) if self.manifest.normalize else vectors

    @property
    def prompts(self) -> dict[str, str]:
        """sentence-transformers' named prompts of this model (name -> prefix)."""
        return dict(self.manifest.prompts)

    def embed(
        self,
        texts: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        prompt_name: str | None = None,
    ) -> Iterator[np.ndarray]:
        """float32 vectors in input order, from any iterable, in bounded memory.

        ``prompt_name`` prepends one of the model's named prompts (sentence-transformers'
        ``prompt_name``), e.g. "query"; an unknown name is a ValueError listing the known ones."""
        if prompt_name is not None:
            texts = _prefixed(self.prompt(prompt_name), texts)
        return self._stream(texts, batch_size, self._last_step)

    def prompt(self, name: str) -> str:
        """The text of the named prompt ``name``."""
        prompts = self.manifest.prompts
        if name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise ValueError(
                f"prompt_name: {self.model_name} has no prompt {name!r}; known: {known}"
            )
        return prompts[name]

    def query_embed(
        self, query: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[np.ndarray]:
        """Embed search queries (the model's query prefix applied)."""
        return self.embed(_prefixed(self.query_prefix, query), batch_size)

    def passage_embed(
        self, texts: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[np.ndarray]:
        """Embed documents to be searched (the model's passage prefix applied)."""
        return self.embed(_prefixed(self.passage_prefix, texts), batch_size)


def _prefixed(prefix: str, texts: str | Iterable[str]) -> Iterable:
    if isinstance(texts, str):
        texts = [texts]
    if not prefix:
        return texts
    # Non-str items pass through unchanged so embed() can name them.
    return (prefix + t if isinstance(t, str) else t for t in texts)
