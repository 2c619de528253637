"""Load a baked model's tokenizer; truncation, padding to a batch, and token counting.

Token counting needs only the tokenizer, never the ONNX session.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from tokenizers import Encoding, Tokenizer

TOKENIZER_FILE = "tokenizer.json"
TruncationDirection = Literal["right", "left"]


class TokenIds(NamedTuple):
    """Token ids given by the caller, as the model reads them (``TextTokenizer.from_ids``)."""

    ids: list[int]
    attention_mask: list[int]
    type_ids: list[int]
    overflowing: bool  # cut at max_length
    full_length: int  # tokens before the cut, special tokens included


class TextTokenizer:
    """A fast (Rust) tokenizer that truncates to ``max_length`` and never pads by itself."""

    def __init__(self, path: str | Path, max_length: int) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self.max_length = max_length
        self._tok.enable_truncation(max_length=max_length)
        self._untruncated: Tokenizer | None = None
        self._template: tuple[list[int], list[int], int, list[int], list[int]] | None = None
        self.pad_id = self._tok.token_to_id("[PAD]") or 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """Token ids of each text with special tokens, truncated to max_length."""
        return self._tok.encode_batch(list(texts))

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[Encoding]:
        """Query/document pairs; past max_length the longer side is cut first (the document,
        in practice), as sentence-transformers' CrossEncoder does."""
        return self._tok.encode_batch([(a, b) for a, b in pairs])

    def count(self, texts: Sequence[str], truncate: bool = True) -> list[int]:
        """Tokens per text, special tokens included; ``truncate=False`` counts the whole text."""
        if truncate:
            return [len(e.ids) for e in self.encode(texts)]
        return [len(e.ids) for e in self.untruncated.encode_batch(list(texts))]

    @property
    def untruncated(self) -> Tokenizer:
        """The same tokenizer without truncation (built on first use)."""
        if self._untruncated is None:
            self._untruncated = Tokenizer.from_str(self._tok.to_str())
            self._untruncated.no_truncation()
            self._untruncated.no_padding()
        return self._untruncated

    def cut_left(self, text: str, prefix: str = "") -> Encoding:
        """``prefix + text`` as the model reads it, its **start** cut to fit max_length (TEI's
        ``truncation_direction: left``): the end of a long text is kept. A prefix (the model's
        query or passage prefix, a named prompt) is kept whole, as it is with right truncation;
        only the text loses tokens. The special tokens are the tokenizer's own (post-processor).
        A prefix that leaves no room for the text is cut with the text, from the left."""
        tok = self.untruncated
        body = tok.encode(text, add_special_tokens=False)
        room = self.max_length - tok.num_special_tokens_to_add(False)
        head = tok.encode(prefix, add_special_tokens=False) if prefix else None
        if head is not None and len(head.ids) < room:
            room -= len(head.ids)
            body.truncate(room, direction="left")
            return tok.post_process(Encoding.merge([head, body], growing_offsets=True))
        if head is not None:
            body = tok.encode(prefix + text, add_special_tokens=False)
        body.truncate(room, direction="left")
        return tok.post_process(body)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def _single_template(self) -> tuple[list[int], list[int], int, list[int], list[int]]:
        """The special tokens the post-processor puts around one sequence: (ids before, their
        type ids, the sequence's type id, ids after, their type ids), read from how it
        encodes a one-word text ("[CLS] a [SEP]" for BERT, "<s> a </s>" for XLM-R)."""
        if self._template is None:
            plain = self.untruncated.encode("a", add_special_tokens=False)
            full = self.untruncated.encode("a")
            n = len(plain.ids)
            start = next(
                i for i in range(len(full.ids) - n + 1) if full.ids[i : i + n] == plain.ids
            )
            self._template = (
                full.ids[:start],
                full.type_ids[:start],
                full.type_ids[start] if n else 0,
                full.ids[start + n :],
                full.type_ids[start + n :],
            )
        return self._template

    def from_ids(
        self, ids: Sequence[int], truncation_direction: TruncationDirection = "right"
    ) -> TokenIds:
        """Token ids of this tokenizer's vocabulary (without special tokens, as tokenizing a text
        with ``add_special_tokens=False`` gives them) as the model reads them: cut to fit
        max_length from ``truncation_direction``, with the special tokens the tokenizer's
        post-processor adds. The ids of a text give exactly that text's encoding."""
        before, before_types, type_id, after, after_types = self._single_template()
        room = self.max_length - len(before) - len(after)
        ids = list(ids)
        body = (
            ids
            if len(ids) <= room
            else ids[-room:]
            if truncation_direction == "left"
            else ids[:room]
        )
        return TokenIds(
            ids=before + body + after,
            attention_mask=[1] * (len(before) + len(body) + len(after)),
            type_ids=before_types + [type_id] * len(body) + after_types,
            overflowing=len(ids) > room,
            full_length=len(before) + len(ids) + len(after),
        )

    def pad(self, encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
        """ONNX inputs for one batch, padded to its longest member."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
