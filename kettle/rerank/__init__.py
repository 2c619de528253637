"""Cross-encoder reranking: one relevance score per (query, document) pair.

The model (a BertForSequenceClassification) reads query and document together and returns logits
``[batch, num_labels]``; the score is the logit of one label (the only one for MS MARCO rerankers,
else the manifest's ``extra["score_label"]``). ``sigmoid=True`` maps it to (0, 1).

Truncation: a pair longer than max_length loses document tokens first (tokenizers'
``only_second``), so the query is read whole. When the query alone leaves no room for the document
that strategy fails, and such a pair is cut ``longest_first`` instead (the Hugging Face default,
which sentence-transformers' CrossEncoder uses for every pair). ``truncation_direction="left"``
(TEI's) cuts the same tokens' count from the start of the document instead of its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from kettle.batching import DEFAULT_BATCH_SIZE, DEFAULT_WINDOW
from kettle.encoder import Embedded, TextEncoder, TruncationDirection, direction_of
from kettle.errors import InvalidTextError, check_texts, text_items, text_problem
from kettle.registry import DEFAULT_RERANK_MODEL, register_custom


@dataclass(frozen=True)
class RerankResult:
    """One document's place in a reranking: its index in the input, its score, maybe its text."""

    index: int
    score: float
    document: str | None = None


@dataclass(frozen=True)
class Ranked:
    """``rank_with_usage``'s answer: the results best first, and the tokens each (query,
    document) pair was read as, in input order, from the same encodings as the scores."""

    results: list[RerankResult]
    token_counts: list[int]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def check_pairs(items: Sequence[Any], offset: int = 0) -> None:
    """InvalidTextError naming the first item that is not a (str, str) pair, and which side."""
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidTextError(
                f"is {type(item).__name__}, not a (query, document) pair",
                field="pairs",
                index=offset + i,
            )
        for side, text in enumerate(item):
            reason = text_problem(text)
            if reason is not None:
                raise InvalidTextError(
                    reason,
                    field="pairs",
                    index=offset + i,
                    where=f"pairs[{offset + i}][{side}] ({('query', 'document')[side]})",
                )


class TextCrossEncoder(TextEncoder):
    """Scores (query, document) pairs with a baked cross-encoder.

    >>> reranker = TextCrossEncoder()  # cross-encoder/ms-marco-MiniLM-L-6-v2, baked under ./models
    >>> scores = list(reranker.rerank("what is a kettle?", documents))  # input order (FastEmbed)
    >>> [best, *rest] = reranker.rank("what is a kettle?", documents, top_n=3)  # best first
    """

    kind = "rerank"
    default_model = DEFAULT_RERANK_MODEL

    def _setup(self, max_length: int | None = None, token_budget: int | None = None) -> None:
        super()._setup(max_length, token_budget)
        self._pair_tokenizers: dict[tuple[str, str], Tokenizer] = {}
        self._label = int(self.manifest.extra.get("score_label", 0))

    def _pair_tokenizer(self, strategy: str, direction: str) -> Tokenizer:
        """The tokenizer truncating pairs by ``strategy`` from ``direction`` (built on first use)."""
        key = (strategy, direction)
        if key not in self._pair_tokenizers:
            tok = Tokenizer.from_str(self.tokenizer.tokenizer.to_str())
            tok.enable_truncation(self.max_length, strategy=strategy, direction=direction)
            self._pair_tokenizers[key] = tok
        return self._pair_tokenizers[key]

    @property
    def label(self) -> str:
        """The name of the label its score is for (TEI's /predict answers it): the manifest's
        ``extra["label"]``, else transformers' default name for its index, ``LABEL_<n>``."""
        return str(self.manifest.extra.get("label") or f"LABEL_{self._label}")

    @classmethod
    def add_custom_model(
        cls,
        model: str,
        sources: Any,
        model_file: str = "onnx/model.onnx",
        description: str = "",
        license: str = "",
        size_in_gb: float = 0.0,
        additional_files: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """FastEmbed's ``add_custom_model`` for a cross-encoder; then bake it before use (see
        ``TextEmbedding.add_custom_model``: kettle never downloads at run time)."""
        register_custom(
            "rerank",
            model,
            sources,
            dim=1,
            pooling="none",
            normalize=False,
            model_file=model_file,
            description=description,
            license=license,
            size_in_gb=size_in_gb,
            max_length=kwargs.pop("max_length", None),
        )

    def encode_pairs(
        self, pairs: Sequence[tuple[str, str]], truncation_direction: TruncationDirection = "right"
    ) -> list[Encoding]:
        """Token ids of each pair as the model sees them (document cut first, see module doc;
        from its start with ``truncation_direction="left"``)."""
        direction = direction_of(truncation_direction)
        pairs = [(q, d) for q, d in pairs]
        try:
            return self._pair_tokenizer("only_second", direction).encode_batch(pairs)
        except Exception:  # tokenizers raises a plain Exception on a truncation error
            return [self._encode_one(pair, direction) for pair in pairs]

    def _encode_one(self, pair: tuple[str, str], direction: str) -> Encoding:
        try:
            return self._pair_tokenizer("only_second", direction).encode(*pair)
        except Exception:
            return self._pair_tokenizer("longest_first", direction).encode(*pair)

    def _scores(self, logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if logits.ndim != 2 or not 0 <= self._label < logits.shape[1]:
            raise ValueError(
                f"{self.model_name}: logits of shape {logits.shape} have no label {self._label}"
            )
        if logits.shape[1] > 1 and "score_label" not in self.manifest.extra:
            raise ValueError(
                f"{self.model_name} has {logits.shape[1]} labels; its description must name the "
                "relevance label in extra['score_label']"
            )
        return logits[:, self._label].astype(np.float32)

    def _full_count(self, pair: Any, kind: Any = None, prompt: str = "") -> int:
        """Tokens of one (query, document) pair without truncation, special tokens as the
        model's pair template adds them (only for the error of ``truncate=False``)."""
        if not isinstance(pair, (tuple, list)):
            return super()._full_count(pair, kind, prompt)
        if ("none", "right") not in self._pair_tokenizers:
            tok = Tokenizer.from_str(self.tokenizer.tokenizer.to_str())
            tok.no_truncation()
            tok.no_padding()
            self._pair_tokenizers[("none", "right")] = tok
        return len(self._pair_tokenizers[("none", "right")].encode(*pair).ids)

    def rerank_pairs_with_usage(
        self,
        pairs: Sequence[tuple[str, str]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        sigmoid: bool = False,
        truncate: bool = True,
        truncation_direction: TruncationDirection = "right",
    ) -> Embedded[float]:
        """Scores of (query, document) pairs in input order and the tokens each pair was read as,
        from one tokenization. ``truncate=False``: a pair past max_length raises
        TextTooLongError (its index, and its whole length as the model's pair template counts
        it) before any pair runs."""
        pairs = list(pairs)
        encode = partial(self.encode_pairs, truncation_direction=truncation_direction)
        scored = list(
            self._with_counts(
                pairs,
                batch_size,
                self._scores,
                encode,
                check_pairs,
                truncate=truncate,
                window_size=max(len(pairs), DEFAULT_WINDOW, batch_size),
                truncation_direction=truncation_direction,
            )
        )
        scores = np.asarray([s for s, _ in scored], dtype=np.float64)
        if sigmoid:
            scores = _sigmoid(scores)
        return Embedded(scores.tolist(), [n for _, n in scored])

    def rank_with_usage(
        self,
        query: str,
        documents: Iterable[str],
        top_n: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        sigmoid: bool = False,
        return_documents: bool = False,
        truncate: bool = True,
        truncation_direction: TruncationDirection = "right",
    ) -> Ranked:
        """``rank`` and the tokens of each (query, document) pair, from one tokenization;
        ``truncate=False`` as in ``rerank_pairs_with_usage`` (the error's index is the
        document's)."""
        if top_n is not None and top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        documents = self._documents(query, documents)
        scored = self.rerank_pairs_with_usage(
            [(query, d) for d in documents],
            batch_size,
            sigmoid=sigmoid,
            truncate=truncate,
            truncation_direction=truncation_direction,
        )
        scores = scored.vectors
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_n]
        results = [
            RerankResult(i, scores[i], documents[i] if return_documents else None) for i in order
        ]
        return Ranked(results, scored.token_counts)

    def rerank_pairs(
        self,
        pairs: Iterable[tuple[str, str]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        sigmoid: bool = False,
        truncation_direction: TruncationDirection = "right",
    ) -> list[float]:
        """Scores of (query, document) pairs, in input order: raw logits, or their sigmoid.
        ``parallel``: worker processes, as in ``TextEmbedding.embed``; ``truncation_direction``:
        which end of a long document is cut."""
        encode = partial(self.encode_pairs, truncation_direction=truncation_direction)
        stream = self._stream(
            pairs,
            batch_size,
            self._scores,
            encode,
            check_pairs,
            parallel=parallel,
            truncation_direction=truncation_direction,  # a pair cut on the left is read whole
        )
        scores = np.fromiter(stream, dtype=np.float64)
        if sigmoid:
            scores = _sigmoid(scores)
        return scores.tolist()

    def rank(
        self,
        query: str,
        documents: Iterable[str],
        top_n: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        sigmoid: bool = False,
        return_documents: bool = False,
        truncation_direction: TruncationDirection = "right",
    ) -> list[RerankResult]:
        """Documents ordered by relevance to ``query``, best first (ties keep input order).

        ``top_n`` keeps the best n; ``return_documents`` puts each text in its result;
        ``truncation_direction`` as in ``rerank_pairs``.
        """
        return self.rank_with_usage(
            query,
            documents,
            top_n,
            batch_size,
            sigmoid=sigmoid,
            return_documents=return_documents,
            truncation_direction=truncation_direction,
        ).results

    def rerank(
        self,
        query: str,
        documents: Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> Iterable[float]:
        """FastEmbed's rerank: one score per document, **in input order** (raw logits;
        ``sigmoid=True`` maps them to (0, 1)). ``rank`` gives them best first."""
        documents = self._documents(query, documents)
        return self.rerank_pairs([(query, d) for d in documents], batch_size, **kwargs)

    @staticmethod
    def _documents(query: str, documents: Iterable[str]) -> list[str]:
        reason = text_problem(query)
        if reason is not None:
            raise InvalidTextError(reason, field="query")
        if isinstance(documents, str):
            raise InvalidTextError("is a str; pass a list of documents", field="documents")
        documents = list(text_items(documents, field="documents"))
        check_texts(documents, field="documents")
        return documents


_sigmoid = sigmoid  # rerank_pairs' ``sigmoid`` flag shadows the function's name
