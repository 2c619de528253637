"""Late interaction (ColBERT): one unit vector per token, scored by MaxSim.

A baked ColBERT graph maps tokens to projected vectors (BERT, then a linear layer without bias);
this module does the rest the way ColBERT and FastEmbed do:

* queries: ``[CLS] [Q] tokens [SEP]`` padded with ``[MASK]`` to the query length (the masks are not
  attended to, but their vectors are kept: query augmentation); longer queries keep all tokens;
* documents: ``[CLS] [D] tokens [SEP]``, with punctuation tokens dropped from the output;
* every token vector is L2-normalised; ``maxsim`` sums, over query tokens, the best dot product
  with any document token.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
from tokenizers import Encoding, Tokenizer
from tokenizers.processors import TemplateProcessing

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import Embedded, TextEmbeddingBase, TextKind
from kettle.errors import InvalidTextError, text_problem
from kettle.pooling import normalize as unit

DEFAULT_LATE_INTERACTION_MODEL = "colbert-ir/colbertv2.0"
# ColBERT's defaults; a model's description may override them in ``extra``.
DEFAULTS = {
    "query_length": 32,
    "query_marker": "[unused0]",
    "document_marker": "[unused1]",
    "mask_token": "[MASK]",
    "skip_punctuation": True,
}


class Tokens(NamedTuple):
    """One text's model input; ``keep`` marks the positions whose vectors are returned."""

    ids: list[int]
    attention_mask: list[int]
    type_ids: list[int]
    keep: list[int]
    overflowing: bool = False  # the text was cut at max_length


def maxsim(query_vecs: np.ndarray, doc_vecs: np.ndarray) -> float:
    """ColBERT's score: the sum over query tokens of the best dot product with a document token."""
    query_vecs, doc_vecs = np.asarray(query_vecs), np.asarray(doc_vecs)
    if query_vecs.ndim != 2 or doc_vecs.ndim != 2:
        raise ValueError(
            f"maxsim takes [tokens, dim] arrays, got {query_vecs.shape} and {doc_vecs.shape}"
        )
    if query_vecs.shape[1] != doc_vecs.shape[1]:
        raise ValueError(f"dims differ: query {query_vecs.shape[1]}, document {doc_vecs.shape[1]}")
    if len(doc_vecs) == 0:
        return 0.0
    return float((query_vecs @ doc_vecs.T).max(axis=1).sum())


def maxsim_scores(query_vecs: np.ndarray, docs_vecs: Iterable[np.ndarray]) -> np.ndarray:
    """MaxSim of one query against each document, float32 [n_docs]."""
    return np.array([maxsim(query_vecs, d) for d in docs_vecs], dtype=np.float32)


def rank_by_maxsim(
    query_vecs: np.ndarray, docs_vecs: Iterable[np.ndarray], top_k: int | None = None
) -> list[tuple[int, float]]:
    """(document index, score) pairs, best first (ties keep input order)."""
    scores = maxsim_scores(query_vecs, docs_vecs)
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [(int(i), float(scores[i])) for i in order]


class LateInteractionTextEmbedding(TextEmbeddingBase):
    """Per-token embeddings (ColBERT) from a baked late-interaction model.

    >>> model = LateInteractionTextEmbedding("colbert-ir/colbertv2.0")
    >>> q = next(model.query_embed("what is late interaction?"))   # [32, 128]
    >>> docs = list(model.embed(["ColBERT scores with MaxSim.", "Bread needs yeast."]))
    >>> model.rank("what is late interaction?", ["ColBERT scores with MaxSim.", "Bread."])
    """

    kind = "late_interaction"

    default_model = DEFAULT_LATE_INTERACTION_MODEL

    def _setup(self, max_length: int | None = None, token_budget: int | None = None) -> None:
        super()._setup(max_length, token_budget)
        settings = DEFAULTS | {k: v for k, v in self.manifest.extra.items() if k in DEFAULTS}
        self.query_length = int(settings["query_length"])
        base = self.tokenizer.tokenizer
        cls_sep = base.encode("").tokens
        if len(cls_sep) != 2:
            raise ValueError(
                f"{self.baked.path}: the tokenizer adds {cls_sep} around a text; "
                "late interaction needs a BERT-style [CLS] ... [SEP] tokenizer"
            )
        self.mask_token = settings["mask_token"]
        self.mask_id = self._token_id(base, self.mask_token)
        self._doc_tok = self._marked(base, cls_sep, settings["document_marker"])
        self._query_tok = self._marked(base, cls_sep, settings["query_marker"])
        self._query_tok.enable_padding(
            length=self.query_length, pad_id=self.mask_id, pad_token=self.mask_token
        )
        self.skip_ids: frozenset[int] = frozenset()
        if settings["skip_punctuation"]:  # the vocabulary's own punctuation tokens, never [UNK]
            self.skip_ids = frozenset(
                i for s in string.punctuation if (i := base.token_to_id(s)) is not None
            )

    def _token_id(self, tokenizer: Tokenizer, token: str) -> int:
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"{self.baked.path}: the tokenizer has no {token!r} token")
        return token_id

    def _marked(self, base: Tokenizer, cls_sep: list[str], marker: str) -> Tokenizer:
        """A copy of ``base`` that puts ``marker`` after [CLS] (within max_length)."""
        tok = Tokenizer.from_str(base.to_str())
        cls, sep = cls_sep
        tok.post_processor = TemplateProcessing(
            single=f"{cls} {marker} $A {sep}",
            special_tokens=[(t, self._token_id(base, t)) for t in (cls, marker, sep)],
        )
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length)
        return tok

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    def token_counts(self, texts: str | Iterable[str], truncate: bool = True) -> list[int]:
        """Tokens per document as the model sees it (the marker included)."""
        counts = [n + 1 for n in super().token_counts(texts, truncate=truncate)]
        return [min(n, self.max_length) for n in counts] if truncate else counts

    def encode_documents(self, texts: Sequence[str]) -> list[Tokens]:
        """Documents' tokens: marker after [CLS]; punctuation is not kept in the output."""
        skip = self.skip_ids
        return [
            Tokens(
                e.ids,
                e.attention_mask,
                e.type_ids,
                [int(i not in skip) for i in e.ids],
                bool(e.overflowing),
            )
            for e in self._doc_tok.encode_batch(list(texts))
        ]

    def encode_queries(self, texts: Sequence[str]) -> list[Tokens]:
        """Queries' tokens: marker after [CLS], [MASK]-padded to the query length, all kept."""
        return [
            Tokens(e.ids, e.attention_mask, e.type_ids, [1] * len(e.ids), bool(e.overflowing))
            for e in self._query_tok.encode_batch(list(texts))
        ]

    def _encoder(
        self, kind: TextKind | None, truncation_direction: str = "right", prompt: str = ""
    ):
        if truncation_direction.lower() != "right" or prompt:  # its markers: encode_* below
            raise ValueError("late interaction models take no prompt and truncate on the right")
        return self.encode_queries if kind == "query" else self.encode_documents

    def feeds(self, encodings: Sequence[Tokens | Encoding]) -> tuple[dict, np.ndarray]:
        """One padded batch and which positions' vectors to keep."""
        width = max(len(e.ids) for e in encodings)
        shape = (len(encodings), width)
        ids = np.full(shape, self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        keep = np.zeros(shape, dtype=bool)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
            keep[row, :n] = getattr(e, "keep", e.attention_mask)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, keep

    @staticmethod
    def _vectors(
        output: np.ndarray, keep: np.ndarray, normalize: bool | None = None
    ) -> list[np.ndarray]:
        """The kept positions' vectors; unit length unless ``normalize=False``."""
        if normalize is False:
            return [out[k].astype(np.float32) for out, k in zip(output, keep, strict=True)]
        return [
            unit(out[k]).astype(np.float32, copy=False) for out, k in zip(output, keep, strict=True)
        ]

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        kind: TextKind | None = None,
    ) -> Iterator[np.ndarray]:
        """Documents -> float32 [n_tokens, dim] each, in input order, in bounded memory."""
        return self._stream(
            documents,
            batch_size,
            partial(self._vectors, normalize=normalize),
            truncate=truncate,
            kind=kind,
            parallel=parallel,
        )

    def embed_with_usage(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind | None = None,
        normalize: bool | None = None,
        truncate: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Embedded[list[np.ndarray]]:
        """Token vectors per text and tokens per text (query padding not counted), from one
        tokenization; ``kind="query"`` embeds queries, otherwise documents."""
        vectors, counts = self._usage(
            texts,
            batch_size,
            partial(self._vectors, normalize=normalize),
            kind=kind,
            truncate=truncate,
        )
        return Embedded(vectors, counts)

    def rank(
        self,
        query: str,
        documents: Iterable[str],
        top_k: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[tuple[int, float]]:
        """(document index, MaxSim score) pairs, best first."""
        reason = text_problem(query)
        if reason is not None:
            raise InvalidTextError(reason, field="query")
        (query_vecs,) = self.query_embed([query])
        return rank_by_maxsim(query_vecs, self.embed(documents, batch_size), top_k)


__all__ = [
    "DEFAULT_LATE_INTERACTION_MODEL",
    "LateInteractionTextEmbedding",
    "Tokens",
    "maxsim",
    "maxsim_scores",
    "rank_by_maxsim",
]
