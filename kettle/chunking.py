"""Token-aware chunking: cut a long text into overlapping windows of at most N model tokens.

Windows are counted in the model's own tokens (so every chunk fits the model) and reported as
character spans of the original text (so a chunk can be found again in its source). Window edges
move back to the start of a word where they can, so no chunk begins or ends inside a word.

Long texts are tokenized one segment at a time (segments end at whitespace), so memory stays
bounded by the segment size, not the text size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

if TYPE_CHECKING:
    from kettle.encoder import TextEncoder

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP = 32
DEFAULT_SEGMENT_CHARS = 100_000

_LAST_SPACE = re.compile(r"\s(?=\S*$)")


@dataclass(frozen=True)
class Chunk:
    """One window of a text: ``text == source[start:end]``, ``tokens`` model tokens long
    (special tokens not counted)."""

    index: int
    start: int
    end: int
    text: str
    tokens: int


class TextChunker:
    """Overlapping token windows over texts, with character offsets.

    >>> chunker = TextChunker.for_encoder(model, chunk_tokens=256, overlap=32)
    >>> [c.text for c in chunker.chunks(long_text)]
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap: int = DEFAULT_OVERLAP,
        segment_chars: int = DEFAULT_SEGMENT_CHARS,
    ) -> None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        if not 0 <= overlap < chunk_tokens:
            raise ValueError(f"overlap must be in 0..{chunk_tokens - 1}, got {overlap}")
        if segment_chars < 1:
            raise ValueError(f"segment_chars must be at least 1, got {segment_chars}")
        # A private copy that neither truncates nor pads: windows are cut here, not by the tokenizer.
        self._tok = Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_truncation()
        self._tok.no_padding()
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.segment_chars = segment_chars

    @classmethod
    def for_encoder(
        cls,
        encoder: TextEncoder,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap: int = DEFAULT_OVERLAP,
        prefix: str = "",
    ) -> TextChunker:
        """A chunker whose windows fit ``encoder``: ``chunk_tokens`` is lowered to what is left of
        the model's max_length after its special tokens and ``prefix`` (e.g. a passage prefix)."""
        chunker = cls(encoder.tokenizer.tokenizer, 1, 0)  # a private, non-truncating copy
        processor = chunker._tok.post_processor
        specials = processor.num_special_tokens_to_add(False) if processor is not None else 0
        prefix_tokens = len(chunker._tok.encode(prefix, add_special_tokens=False).ids)
        room = encoder.max_length - specials - prefix_tokens
        if room < 1:
            raise ValueError(f"{encoder.model_name}: no room for text after the prefix {prefix!r}")
        chunker.chunk_tokens = min(chunk_tokens, room)
        chunker.overlap = min(overlap, chunker.chunk_tokens - 1)
        return chunker

    def chunks(self, text: str) -> Iterator[Chunk]:
        """The windows of ``text`` in order; none for a text without tokens."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        size, overlap = self.chunk_tokens, self.overlap
        tokens: list[tuple[int, int, int]] = []  # (char start, char end, word number)
        covered = 0  # how many tokens at the head of ``tokens`` are in an emitted chunk already
        index = 0
        for segment_tokens in self._segments(text):
            tokens += segment_tokens
            # One token of look-ahead tells whether a window would end inside a word.
            while len(tokens) > size:
                end = _word_start_before(tokens, size)
                yield _chunk(text, tokens, end, index)
                index += 1
                start = _word_start_before(tokens, max(end - overlap, 1), floor=1)
                tokens = tokens[start:]
                covered = end - start
        if len(tokens) > covered:
            yield _chunk(text, tokens, len(tokens), index)

    def _segments(self, text: str) -> Iterator[list[tuple[int, int, int]]]:
        """Tokens of consecutive pieces of ``text`` cut at whitespace, with global offsets and
        word numbers that never repeat across pieces."""
        position, words = 0, 0
        while position < len(text):
            cut = min(position + self.segment_chars, len(text))
            if cut < len(text):
                match = _LAST_SPACE.search(text, position, cut)
                if match and match.start() > position:
                    cut = match.start() + 1
            encoding = self._tok.encode(text[position:cut], add_special_tokens=False)
            word_ids = encoding.word_ids
            segment = []
            for (start, end), word in zip(encoding.offsets, word_ids, strict=True):
                segment.append((position + start, position + end, words + (word or 0)))
            words += max((w for w in word_ids if w is not None), default=-1) + 1
            position = cut
            yield segment


def _word_start_before(tokens: list[tuple[int, int, int]], index: int, floor: int = 1) -> int:
    """``index`` moved back to the first token of the word it falls in, but not below ``floor``;
    a word that reaches back past ``floor`` (longer than a window) is cut where it is."""
    if index >= len(tokens):
        return index
    moved = index
    while moved > floor and tokens[moved][2] == tokens[moved - 1][2]:
        moved -= 1
    if moved > 0 and tokens[moved][2] == tokens[moved - 1][2]:
        return index
    return moved


def _chunk(text: str, tokens: list[tuple[int, int, int]], end: int, index: int) -> Chunk:
    start_char, end_char = tokens[0][0], tokens[end - 1][1]
    return Chunk(index, start_char, end_char, text[start_char:end_char], end)


__all__ = ["Chunk", "TextChunker", "DEFAULT_CHUNK_TOKENS", "DEFAULT_OVERLAP"]
