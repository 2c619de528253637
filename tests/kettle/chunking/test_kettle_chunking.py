"""kettle.chunking: token windows with overlap, character offsets, word-aligned edges."""

from __future__ import annotations

import pytest

from kettle.chunking import TextChunker

PROSE = (
    "Kettles boil water quickly. An electric kettle switches itself off when the water boils; "
    "a stovetop kettle whistles instead. Limescale builds up in hard-water areas, so descale "
    "the kettle with citric acid every few weeks. Antidisestablishmentarianism is a long word. "
    "Crème brûlée, naïve café façade — and 🫖 emoji too.\n\n"
)


def tokens_of(tokenizer, text: str) -> list[str]:
    return tokenizer.encode(text, add_special_tokens=False).tokens


def test_windows_cover_the_text_with_overlap_and_fit(tokenizer):
    text = PROSE * 6
    chunker = TextChunker(tokenizer, chunk_tokens=40, overlap=8)
    chunks = list(chunker.chunks(text))
    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert 0 < chunk.tokens <= 40
        # Edges fall between words, so the chunk's own tokens are the window's tokens.
        assert len(tokens_of(tokenizer, chunk.text)) == chunk.tokens
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start < after.start < before.end  # they overlap and move forward
        overlap = len(tokens_of(tokenizer, text[after.start : before.end]))
        assert overlap >= 8
    # Together they cover every token: the first starts at the first token, the last ends at the
    # last one.
    stripped = text.strip()
    assert chunks[0].start == text.index(stripped[0])
    assert chunks[-1].end == len(text.rstrip())


def test_no_window_starts_or_ends_inside_a_word(tokenizer):
    text = PROSE * 4
    for chunk in TextChunker(tokenizer, chunk_tokens=17, overlap=5).chunks(text):
        assert chunk.start == 0 or not (
            text[chunk.start - 1].isalnum() and text[chunk.start].isalnum()
        )
        assert chunk.end == len(text) or not (
            text[chunk.end - 1].isalnum() and text[chunk.end].isalnum()
        )


def test_segments_do_not_change_the_windows(tokenizer):
    text = PROSE * 5
    whole = TextChunker(tokenizer, 30, 6, segment_chars=1_000_000)
    pieces = TextChunker(tokenizer, 30, 6, segment_chars=97)
    assert [(c.start, c.end) for c in whole.chunks(text)] == [
        (c.start, c.end) for c in pieces.chunks(text)
    ]


def test_short_empty_and_blank_texts(tokenizer):
    chunker = TextChunker(tokenizer, 64, 8)
    [only] = chunker.chunks("  A short note.  ")
    assert only.text == "A short note." and (only.start, only.end) == (2, 15)
    assert list(chunker.chunks("")) == []
    assert list(chunker.chunks(" \n\t ")) == []


def test_a_word_longer_than_a_window_is_cut_inside(tokenizer):
    text = "qzx" * 30  # one word (under WordPiece's 100 characters) of many pieces
    assert len(tokens_of(tokenizer, text)) > 30
    chunks = list(TextChunker(tokenizer, 10, 2).chunks(text))
    assert len(chunks) > 3 and all(c.tokens <= 10 for c in chunks)
    assert chunks[-1].end == len(text)


def test_zero_overlap_windows_touch(tokenizer):
    chunks = list(TextChunker(tokenizer, 12, 0).chunks(PROSE))
    total = len(tokens_of(tokenizer, PROSE))
    assert sum(c.tokens for c in chunks) == total


def test_for_encoder_leaves_room_for_special_tokens_and_prefix(tokenizer):
    class Encoder:  # what for_encoder reads from a kettle TextEncoder
        model_name = "test"
        max_length = 32

        class tokenizer:  # noqa: N801 - mirrors TextEncoder.tokenizer.tokenizer
            pass

    Encoder.tokenizer.tokenizer = tokenizer
    plain = TextChunker.for_encoder(Encoder, chunk_tokens=256, overlap=64)
    assert plain.chunk_tokens == 30  # [CLS] and [SEP]
    assert plain.overlap == 29
    prefixed = TextChunker.for_encoder(Encoder, chunk_tokens=256, overlap=4, prefix="passage: ")
    assert prefixed.chunk_tokens == 30 - len(tokens_of(tokenizer, "passage: "))
    assert prefixed.overlap == 4
    small = TextChunker.for_encoder(Encoder, chunk_tokens=10, overlap=2)
    assert (small.chunk_tokens, small.overlap) == (10, 2)


@pytest.mark.parametrize(
    ("chunk_tokens", "overlap", "words"),
    [(0, 0, "chunk_tokens"), (10, 10, "overlap"), (10, -1, "overlap")],
)
def test_bad_settings_are_named(tokenizer, chunk_tokens, overlap, words):
    with pytest.raises(ValueError, match=words):
        TextChunker(tokenizer, chunk_tokens, overlap)


def test_not_text_is_a_type_error(tokenizer):
    with pytest.raises(TypeError, match="int"):
        list(TextChunker(tokenizer).chunks(42))
