"""Load a baked model's tokenizer; truncation, padding to a batch, and token counting.

Token counting needs only the tokenizer, never the ONNX session.

A tokenizer truncates only after it has normalized, split and encoded the whole text (and kept
the rest as overflow): a 6 MB text costs about 1.9 GB before 256 tokens are kept. So each text is
first cut to what ``max_length`` can use (``TextTokenizer.fit``): at a split the tokenizer itself
makes, past enough characters for every token it keeps (``max_length`` x its longest vocabulary
entry, more when the text is mostly characters it drops). The tokens kept are those of the whole
text, so the vectors are too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from tokenizers import Encoding, Tokenizer

TOKENIZER_FILE = "tokenizer.json"
COUNT_PIECE_CHARS = 1 << 16  # counting every token of a long text: this much of it at a time
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

    # ---- the cut before tokenizing -------------------------------------------------------------
    @cached_property
    def longest_piece(self) -> int:
        """Characters of the longest vocabulary entry (markers such as "##" and "Ġ" counted:
        over, never under): the most text one token can stand for."""
        return max((len(piece) for piece in self._tok.get_vocab(with_added_tokens=True)), default=1)

    @property
    def max_chars(self) -> int:
        """The first cut: enough characters for ``max_length`` tokens of the longest entry, each
        after one separator."""
        return self.max_length * (self.longest_piece + 1)

    def fit(self, text: str, direction: TruncationDirection = "right") -> str:
        """``text``, or the part of it that the tokenizer reads as it reads the whole text's
        first (``direction`` "left": last) ``max_length`` tokens. The cut is at a split of the
        tokenizer's own pre-tokenizer (a word ends there whole), and it stands only when the cut
        text still overflows max_length; a text of characters the tokenizer drops (runs of
        spaces, control characters) gets cuts four times longer until it does, or is read whole."""
        size = self.max_chars
        while size < len(text):
            if direction == "left":
                cut, at_split = self._cut_left(text, size)
            else:
                cut, at_split = self._cut(text, size)
            encoding = self._tok.encode(cut)
            margin_ok = direction == "right" and _kept_end(encoding) < len(cut) - size // 4
            if encoding.overflowing and (at_split or margin_ok):
                return cut
            size *= 4
        return text

    def fit_items(
        self, items: Sequence[Any], direction: TruncationDirection = "right"
    ) -> list[Any]:
        """``fit`` on every text of ``items`` (texts, or pairs of texts: those only when cut on
        the right); other items as they are (the caller's check names them)."""
        out: list[Any] = []
        for item in items:
            if isinstance(item, str):
                out.append(self.fit(item, direction))
            elif (
                direction == "right"
                and isinstance(item, tuple | list)
                and all(isinstance(t, str) for t in item)
            ):
                out.append(type(item)(self.fit(t) for t in item))
            else:
                out.append(item)
        return out

    def _splits(self, window: str) -> list[int]:
        """Where pre-tokens start in ``window`` (its first aside): the tokenizer's own splits,
        or after each space when its pre-tokenizer needs the normalizer first."""
        splitter = self._tok.pre_tokenizer
        if splitter is not None:
            try:
                return [a for _, (a, _) in splitter.pre_tokenize_str(window)[1:]]
            except Exception:
                pass
        return [i + 1 for i, c in enumerate(window) if c.isspace()]

    def _cut_left(self, text: str, size: int) -> tuple[str, bool]:
        """``text[n:]`` for the smallest split ``n >= len(text) - size`` in the next ``size // 4``
        characters (True), or ``text[-size:]`` where none is (False)."""
        base = len(text) - size
        starts = [a for a in self._splits(text[base : base + size // 4]) if a > 0]
        if not starts:
            return text[base:], False
        return text[base + min(starts) :], True

    def _cut(self, text: str, size: int) -> tuple[str, bool]:
        """``text[:n]`` for the largest split ``n <= size`` in its last ``size // 4`` characters
        (True), or ``text[:size]`` where none is (False: one word that long)."""
        window_start = size - size // 4
        window = text[window_start : size + 1]  # one past: a split right at ``size`` counts
        starts = [a for a in self._splits(window) if 0 < a <= size - window_start]
        if not starts:
            return text[:size], False
        return text[: window_start + max(starts)], True

    # ---- encodings ------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[Encoding]:
        """Token ids of each text with special tokens, truncated to max_length."""
        return self._tok.encode_batch(self.fit_items(texts), add_special_tokens=add_special_tokens)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[Encoding]:
        """Query/document pairs; past max_length the longer side is cut first (the document,
        in practice), as sentence-transformers' CrossEncoder does. Each side is ``fit`` first:
        a side cut so still holds max_length tokens, so the longer side stays the longer."""
        return self._tok.encode_batch(self.fit_items([(a, b) for a, b in pairs]))

    def count(self, texts: Sequence[str], truncate: bool = True) -> list[int]:
        """Tokens per text, special tokens included; ``truncate=False`` counts the whole text."""
        if truncate:
            return [len(e.ids) for e in self.encode(texts)]
        return [self._whole_count(text) for text in texts]

    @property
    def untruncated(self) -> Tokenizer:
        """The same tokenizer without truncation (built on first use)."""
        if self._untruncated is None:
            self._untruncated = Tokenizer.from_str(self._tok.to_str())
            self._untruncated.no_truncation()
            self._untruncated.no_padding()
        return self._untruncated

    def _whole_count(self, text: str) -> int:
        """Every token of ``text``, read in pieces cut at the tokenizer's own splits, so a long
        text costs one piece's memory (the count only names a text truncate=False refuses)."""
        tok = self.untruncated
        specials = len(tok.encode("").ids)
        size = max(self.max_chars, COUNT_PIECE_CHARS)
        total, start = 0, 0
        while len(text) - start > size:
            piece, _ = self._cut(text[start : start + size + 1], size)
            total += len(tok.encode(piece, add_special_tokens=False).ids)
            start += len(piece)
        return total + len(tok.encode(text[start:], add_special_tokens=False).ids) + specials
        return self._untruncated

    def cut_left(self, text: str, prefix: str = "") -> Encoding:
        """``prefix + text`` as the model reads it, its **start** cut to fit max_length (TEI's
        ``truncation_direction: left``): the end of a long text is kept. A prefix (the model's
        query or passage prefix, a named prompt) is kept whole, as it is with right truncation;
        only the text loses tokens. The special tokens are the tokenizer's own (post-processor).
        A prefix that leaves no room for the text is cut with the text, from the left."""
        tok = self.untruncated
        text = self.fit(text, "left")
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


def _kept_end(encoding: Encoding) -> int:
    """Where in the text the last token an encoding keeps ends (special tokens aside)."""
    ends = [
        e
        for (_, e), special in zip(encoding.offsets, encoding.special_tokens_mask, strict=True)
        if not special
    ]
    return max(ends, default=0)
