"""The path every text model walks: check -> tokenize -> batching -> session.run -> its last step.

``TextEncoder`` adds the tokenizer to the ONNX model base: loaded at once (counting tokens never
pays for a session), truncating to ``max_length``. Each text is tokenized once; its token count
comes from that same encoding, so ``embed_with_usage`` returns vectors and usage from one pass,
and ``truncate=False`` finds a text past ``max_length`` from the encoding's overflow.
Kinds supply ``_last_step`` (pooling, SPLADE weights, per-token vectors, scores) and, when their
input is not plain text with a prefix, ``_encoder``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
from tokenizers import Encoding

from kettle.batching import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TOKEN_BUDGET,
    DEFAULT_WINDOW,
    plan_batches,
    windows,
)
from kettle.errors import InvalidTextError, TextTooLongError, check_texts, text_items
from kettle.onnx_model import OnnxModel
from kettle.parallel import WorkerPool, run_batch, step_spec, workers_for
from kettle.tokenize import TextTokenizer, TruncationDirection

TextKind = Literal["query", "passage"]
V = TypeVar("V")


@dataclass(frozen=True)
class Embedded(Generic[V]):
    """What ``embed_with_usage`` returns: the vectors and the tokens each text was read as
    (special tokens and prefix included, after truncation): what the model was billed for."""

    vectors: V
    token_counts: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


class TextEncoder(OnnxModel):
    """Shared machinery of the text model kinds; not used directly.

    Options beyond FastEmbed's: ``max_length`` (at most the model's; lower truncates sooner) and
    ``token_budget`` (padded tokens per ``session.run``; the class's default suits its kind).
    """

    token_budget: ClassVar[int] = DEFAULT_TOKEN_BUDGET

    def _setup(self, max_length: int | None = None, token_budget: int | None = None) -> None:
        manifest = self.manifest
        if max_length is not None and not 1 <= max_length <= manifest.max_length:
            raise ValueError(f"max_length must be in 1..{manifest.max_length}, got {max_length}")
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be at least 1, got {token_budget}")
        self.max_length = max_length or manifest.max_length
        self.tokenizer = TextTokenizer(self.baked.path, self.max_length)
        if token_budget is not None:
            self.token_budget = token_budget

    # ------------------------------------------------------------------ tokens
    def token_count(
        self, texts: str | Iterable[str], batch_size: int = 1024, truncate: bool = True, **_: Any
    ) -> int:
        """Total tokens the model sees for ``texts`` (special tokens included); no session.

        ``batch_size`` is FastEmbed's argument (texts tokenized per call); any value counts the same.
        """
        return sum(self.token_counts(texts, truncate=truncate))

    def token_counts(self, texts: str | Iterable[str], truncate: bool = True) -> list[int]:
        """Tokens per text; ``truncate=False`` counts past max_length too."""
        texts = text_items(texts)
        counts: list[int] = []
        for offset, window in _offset_windows(texts, DEFAULT_WINDOW):
            check_texts(window, offset)
            counts += self.tokenizer.count(window, truncate=truncate)
        return counts

    def _prefix(self, kind: TextKind | None) -> str:
        if kind is None:
            return ""
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query', 'passage' or None, got {kind!r}")
        return self.manifest.query_prefix if kind == "query" else self.manifest.passage_prefix

    def _encoder(
        self,
        kind: TextKind | None,
        truncation_direction: TruncationDirection = "right",
        prompt: str = "",
    ) -> Callable[[list[str]], Sequence[Any]]:
        """Texts -> encodings as the model reads them (the kind's prefix, then ``prompt``, before
        each). ``left``: a text past max_length loses its start instead of its end
        (``TextTokenizer.cut_left``: prefix and prompt stay whole); a text that fits is encoded
        exactly as with ``right``."""
        direction = direction_of(truncation_direction)
        prefix = self._prefix(kind) + prompt

        def encode(texts: list[str]) -> Sequence[Any]:
            encodings = self.tokenizer.encode([prefix + t for t in texts] if prefix else texts)
            if direction == "right":
                return encodings
            return [
                self.tokenizer.cut_left(t, prefix) if e.overflowing else e
                for t, e in zip(texts, encodings, strict=True)
            ]

        return encode

    def check_token_ids(self, items: Sequence[Any], offset: int = 0) -> None:
        """InvalidTextError naming the first item that is not a non-empty list of this model's
        token ids (ints in 0..vocab_size - 1), and the id at fault."""
        vocab = self.tokenizer.vocab_size
        for i, item in enumerate(items):
            index = offset + i
            if not isinstance(item, (list, tuple)) or not item:
                what = "an empty list" if isinstance(item, (list, tuple)) else type(item).__name__
                raise InvalidTextError(
                    f"is {what}, not a list of token ids", field="ids", index=index
                )
            for j, token in enumerate(item):
                if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
                    reason = f"is {type(token).__name__}, not a token id"
                elif not 0 <= token < vocab:
                    reason = f"is {token}; {self.model_name}'s token ids are 0..{vocab - 1}"
                else:
                    continue
                raise InvalidTextError(reason, field="ids", index=index, where=f"ids[{index}][{j}]")

    def _full_count(self, text: str, kind: TextKind | None, prompt: str = "") -> int:
        """Tokens of one text without truncation (only for the error of ``truncate=False``)."""
        return self.token_counts([self._prefix(kind) + prompt + text], truncate=False)[0]

    # ------------------------------------------------------------------ the shared path
    def feeds(self, encodings: Sequence[Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One batch padded as the graph takes it, and the mask its last step reads."""
        feeds = self.tokenizer.pad(encodings)
        return feeds, feeds["attention_mask"]

    def run(self, encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """One padded batch through the session: (model output, the mask)."""
        feeds, mask = self.feeds(encodings)
        return self.run_session(feeds), mask

    def _with_counts(
        self,
        texts: str | Iterable[Any],
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        encode: Callable[[list[Any]], Sequence[Any]] | None = None,
        check: Callable[[Sequence[Any], int], None] = check_texts,
        *,
        truncate: bool = True,
        kind: TextKind | None = None,
        window_size: int | None = None,
        parallel: int | None = None,
        truncation_direction: TruncationDirection = "right",
        prompt: str = "",
    ) -> Iterator[tuple[Any, int]]:
        """(result of ``last_step``, tokens read) per item, in input order, one bounded window at
        a time. Every item of a window is checked and tokenized before any of it runs, so a bad
        item or (``truncate=False``) a text past max_length stops the window with nothing run.
        ``parallel``: worker processes run the batches (kettle.parallel), same results.
        ``truncation_direction``: which end of a text past max_length is cut; ``prompt``: text
        before each item, after the kind's prefix (``_encoder``).
        The arguments are checked at the call, not at the first ``next``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        texts = text_items(texts)
        workers = workers_for(parallel, texts, batch_size)
        if encode is None:
            encode = self._encoder(kind, truncation_direction, prompt)
        size = window_size or max(DEFAULT_WINDOW, batch_size)
        args = (texts, size, batch_size, last_step, encode, check, truncate, kind)
        direction = direction_of(truncation_direction)
        if workers:
            return self._pooled(workers, args, prompt, direction)
        return self._windows(*args, None, prompt, direction)

    def _pooled(
        self, workers: int, args: tuple, prompt: str, direction: TruncationDirection
    ) -> Iterator[tuple[Any, int]]:
        with WorkerPool(self, workers) as pool:
            yield from self._windows(*args, pool, prompt, direction)

    def _windows(
        self,
        texts: Iterable[Any],
        size: int,
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        encode: Callable[[list[Any]], Sequence[Any]],
        check: Callable[[Sequence[Any], int], None],
        truncate: bool,
        kind: TextKind | None,
        pool: WorkerPool | None,
        prompt: str = "",
        direction: TruncationDirection = "right",
    ) -> Iterator[tuple[Any, int]]:
        spec = step_spec(last_step) if pool is not None else None
        for offset, window in _offset_windows(texts, size):
            check(window, offset)
            # Each text cut to what max_length can use: the same tokens, bounded work.
            encodings = encode(self.tokenizer.fit_items(window, direction))
            if not truncate:
                for i, e in enumerate(encodings):
                    if e.overflowing:
                        full = getattr(e, "full_length", None)  # token ids know their length
                        raise TextTooLongError(
                            index=offset + i,
                            tokens=full or self._full_count(window[i], kind, prompt),
                            field="texts" if full is None else "ids",
                            limit=self.max_length,
                            model=self.model_name,
                        )
            counts = [_n_tokens(e) for e in encodings]
            results: list[Any] = [None] * len(window)
            lengths = [len(e.ids) for e in encodings]
            batches = plan_batches(lengths, batch_size, self.token_budget)
            if pool is None:
                outputs: Iterable[Sequence[Any]] = (
                    last_step(*self.run([encodings[i] for i in batch])) for batch in batches
                )
            else:
                tasks = (self.feeds([encodings[i] for i in batch]) + (spec,) for batch in batches)
                outputs = pool.imap(run_batch, tasks)
            for batch, batch_results in zip(batches, outputs, strict=True):
                for i, result in zip(batch, batch_results, strict=True):
                    results[i] = result
            yield from zip(results, counts, strict=True)

    def _stream(
        self,
        texts: str | Iterable[Any],
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        encode: Callable[[list[Any]], Sequence[Any]] | None = None,
        check: Callable[[Sequence[Any], int], None] = check_texts,
        **options: Any,
    ) -> Iterator[Any]:
        """Results of ``last_step`` per item, in input order (``_with_counts`` without counts)."""
        pairs = self._with_counts(texts, batch_size, last_step, encode, check, **options)
        return (result for result, _ in pairs)

    def _usage(
        self,
        texts: Sequence[str],
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        *,
        kind: TextKind | None,
        truncate: bool,
        truncation_direction: TruncationDirection = "right",
        prompt: str = "",
    ) -> tuple[list[Any], list[int]]:
        """Every text's result and token count; all texts are checked before any is embedded."""
        texts = list(text_items(texts))
        pairs = list(
            self._with_counts(
                texts,
                batch_size,
                last_step,
                truncate=truncate,
                kind=kind,
                window_size=max(len(texts), DEFAULT_WINDOW, batch_size),
                truncation_direction=truncation_direction,
                prompt=prompt,
            )
        )
        return [r for r, _ in pairs], [n for _, n in pairs]

    def _id_usage(
        self,
        ids: Sequence[Sequence[int]],
        batch_size: int,
        last_step: Callable[[np.ndarray, np.ndarray], Sequence[Any]],
        *,
        truncate: bool,
        truncation_direction: TruncationDirection,
    ) -> tuple[list[Any], list[int]]:
        """``_usage`` for token ids (``TextTokenizer.from_ids``): every list checked first."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise InvalidTextError("must be a list of lists of token ids", field="ids")
        items = list(ids)

        def encode(window: list[Sequence[int]]) -> list[Any]:
            return [self.tokenizer.from_ids(item, truncation_direction) for item in window]

        pairs = list(
            self._with_counts(
                items,
                batch_size,
                last_step,
                encode,
                self.check_token_ids,
                truncate=truncate,
                window_size=max(len(items), DEFAULT_WINDOW, batch_size),
            )
        )
        return [r for r, _ in pairs], [n for _, n in pairs]


def direction_of(value: str) -> TruncationDirection:
    """ "right" or "left" (TEI spells them Right / Left); ValueError for anything else."""
    folded = value.lower() if isinstance(value, str) else value
    if folded not in ("right", "left"):
        raise ValueError(f"truncation_direction must be 'right' or 'left', got {value!r}")
    return folded


def _n_tokens(encoding: Any) -> int:
    """Tokens the model reads from one encoding (padding, where a kind pads, not counted)."""
    if isinstance(encoding, Encoding):
        return len(encoding.ids)
    return int(sum(encoding.attention_mask))


def _offset_windows(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    offset = 0
    for window in windows(items, size):
        yield offset, window
        offset += len(window)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Embedded",
    "TextEncoder",
    "TextKind",
    "TruncationDirection",
    "check_texts",
    "direction_of",
]


class TextEmbeddingBase(TextEncoder):
    """What every text embedding kind (dense, sparse, late interaction) shares on top of the
    encoder: FastEmbed's query and passage methods, written once (a cross-encoder has neither)."""

    def query_embed(
        self, query: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[Any]:
        """Embed search queries: ``embed`` with the model's query prefix (FastEmbed's method);
        every other keyword is ``embed``'s, and one it does not take is a TypeError."""
        return self.embed(query, batch_size, kind="query", **kwargs)

    def passage_embed(
        self, texts: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[Any]:
        """Embed documents to be searched: ``embed`` with the model's passage prefix."""
        return self.embed(texts, batch_size, kind="passage", **kwargs)
