"""The path every text model walks: tokenize -> batching -> session.run -> (its own last step).

``TextEncoder`` loads a baked model (manifest verified), its tokenizer at once and its ONNX session
lazily, so counting tokens never pays for a session. Model kinds subclass it and supply the last
step (pooling, SPLADE weights, per-token vectors, scores).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding

from kettle.batching import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TOKEN_BUDGET,
    DEFAULT_WINDOW,
    plan_batches,
    windows,
)
from kettle.manifest import Manifest
from kettle.registry import DEFAULT_MODEL, list_supported_models
from kettle.session import create_session
from kettle.store import BakedModel, find_model
from kettle.tokenize import TextTokenizer


def check_texts(items: Sequence[Any], offset: int = 0) -> None:
    """A TypeError naming the index of the first item that is not a str (None included)."""
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"texts[{offset + i}] is {type(item).__name__}, not str"
                + (": None is not text" if item is None else "")
            )


class TextEncoder:
    """Shared machinery of the text model kinds; not used directly."""

    kind: str = ""

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        models_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        max_length: int | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
    ) -> None:
        self.model_name = model_name
        self.baked: BakedModel = find_model(model_name, models_dir, kind=self.kind or None)
        manifest = self.baked.manifest
        if max_length is not None and not 1 <= max_length <= manifest.max_length:
            raise ValueError(f"max_length must be in 1..{manifest.max_length}, got {max_length}")
        self.max_length = max_length or manifest.max_length
        self.tokenizer = TextTokenizer(self.baked.path, self.max_length)
        self.threads = threads
        self.providers = providers
        self.token_budget = token_budget
        self._session = None
        self._input_names: list[str] = []
        self._output_name = manifest.onnx.get("output")

    @property
    def manifest(self) -> Manifest:
        return self.baked.manifest

    @classmethod
    def list_supported_models(cls) -> list[dict]:
        """The registry's models of this class's kind."""
        return list_supported_models(cls.kind or None)

    @property
    def session(self):
        """The ONNX Runtime session, created on first use."""
        if self._session is None:
            self._session = create_session(self.baked.model_path, self.threads, self.providers)
            self._input_names = [i.name for i in self._session.get_inputs()]
            if self._output_name is None:
                self._output_name = self._session.get_outputs()[0].name
        return self._session

    def load(self) -> None:
        """Create the session now (for an init phase or a snapshot) rather than on first use."""
        _ = self.session

    def token_count(self, texts: str | Iterable[str], truncate: bool = True) -> int:
        """Total tokens the model sees for ``texts`` (special tokens included); no session."""
        return sum(self.token_counts(texts, truncate=truncate))

    def token_counts(self, texts: str | Iterable[str], truncate: bool = True) -> list[int]:
        """Tokens per text; ``truncate=False`` counts past max_length too."""
        if isinstance(texts, str):
            texts = [texts]
        counts: list[int] = []
        for offset, window in _offset_windows(texts, DEFAULT_WINDOW):
            check_texts(window, offset)
            counts += self.tokenizer.count(window, truncate=truncate)
        return counts

    def run(self, encodings: Sequence[Encoding]) -> tuple[np.ndarray, np.ndarray]:
        """One padded batch through the session: (model output, attention mask)."""
        feeds = self.tokenizer.pad(encodings)
        session = self.session
        feeds = {name: feeds[name] for name in self._input_names}
        (output,) = session.run([self._output_name], feeds)
        return output, feeds["attention_mask"]

    def _stream(
        self,
        texts: str | Iterable[str],
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        encode: Callable[[list[str]], list[Encoding]] | None = None,
        check: Callable[[Sequence[Any], int], None] = check_texts,
    ) -> Iterator[Any]:
        """Results of ``last_step`` per text, in input order, one bounded window at a time.

        ``check(window, offset)`` validates the items (texts by default; pairs for rerankers)."""
        if isinstance(texts, str):
            texts = [texts]
        encode = encode or self.tokenizer.encode
        window_size = max(DEFAULT_WINDOW, batch_size)
        for offset, window in _offset_windows(texts, window_size):
            check(window, offset)
            encodings = encode(window)
            results: list[Any] = [None] * len(window)
            lengths = [len(e.ids) for e in encodings]
            for batch in plan_batches(lengths, batch_size, self.token_budget):
                output, mask = self.run([encodings[i] for i in batch])
                for i, result in zip(batch, last_step(output, mask), strict=True):
                    results[i] = result
            yield from results


def _offset_windows(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    offset = 0
    for window in windows(items, size):
        yield offset, window
        offset += len(window)


__all__ = ["TextEncoder", "check_texts", "DEFAULT_BATCH_SIZE"]
