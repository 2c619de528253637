"""A text is cut to what max_length can use before it is tokenized: the same tokens and vectors
as the whole text, and work bounded by max_length instead of the text's size."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.errors import TextTooLongError
from kettle.tokenize import COUNT_PIECE_CHARS, TextTokenizer

WORDS = (
    "kettle tea water boils the steep minutes über café naïve 東京 don't 1,234.5 (ok) -- x".split()
)


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


LONG_TEXTS = {
    "words": _words(40_000),
    "cjk": "東京の水でお茶を入れる。" * 3_000,
    "spaces-first": " " * 30_000 + _words(20_000, 1),  # characters the tokenizer drops, then words
    "one-long-word": "a" * 60_000 + " " + _words(5_000, 2),
    "punctuation": "!?.,;:" * 10_000,
    "newlines": ("line of tea\n\n\n" * 8_000),
    "long-words": " ".join("x" * 150 for _ in range(600)),  # each past WordPiece's 100 characters
}


class Recording:
    """A stand-in for the Rust tokenizer that records the longest text it was handed."""

    def __init__(self, inner):
        self.inner, self.longest = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _seen(self, items):
        for item in items if isinstance(items, list) else [items]:
            for text in item if isinstance(item, tuple | list) else [item]:
                self.longest = max(self.longest, len(text))

    def encode(self, text, *args, **kwargs):
        self._seen(text)
        return self.inner.encode(text, *args, **kwargs)

    def encode_batch(self, items, *args, **kwargs):
        self._seen(items)
        return self.inner.encode_batch(items, *args, **kwargs)


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


@pytest.fixture
def whole(model, monkeypatch):
    """whole(texts) -> the vectors and token ids of the texts tokenized whole (no cut)."""

    def run(texts, direction="right"):
        with monkeypatch.context() as m:
            m.setattr(TextTokenizer, "fit", lambda self, text, direction="right": text)
            vectors = model.embed_with_usage(texts, truncation_direction=direction).vectors
            ids = [e.ids for e in model.tokenizer.encode(texts)]
        return vectors, ids

    return run


@pytest.mark.parametrize("name", sorted(LONG_TEXTS))
def test_a_cut_text_gives_the_tokens_and_vector_of_the_whole_text(model, whole, name):
    text = LONG_TEXTS[name]
    cut = model.tokenizer.fit(text)
    assert len(cut) <= len(text) and text.startswith(cut)
    vectors, ids = whole([text])
    assert [e.ids for e in model.tokenizer.encode([text])] == ids
    assert np.array_equal(model.embed_with_usage([text]).vectors, vectors)
    assert np.array_equal(model.embed_with_usage(["short one", text]).vectors[1], vectors[0])


@pytest.mark.parametrize("name", ["words", "cjk", "spaces-first", "newlines"])
def test_truncation_left_keeps_the_whole_texts_end(model, whole, name):
    text = LONG_TEXTS[name][::-1] if name == "spaces-first" else LONG_TEXTS[name]
    cut = model.tokenizer.fit(text, "left")
    assert len(cut) < len(text) and text.endswith(cut)
    vectors, _ = whole([text], "left")
    got = model.embed_with_usage([text], truncation_direction="left").vectors
    assert np.array_equal(got, vectors)


def test_short_texts_are_never_cut(model):
    for text in ("", "tea", _words(200), " " * 5_000):
        assert model.tokenizer.fit(text) == text


def test_the_tokenizer_never_reads_a_whole_long_text(model, monkeypatch):
    """Work per text is bounded by max_length, not by its size: the library, the token counts
    and truncate=False's overflow check all hand the tokenizer a cut text."""
    big = _words(200_000)  # 1.2 MB
    tok = model.tokenizer
    tok.count(["x"], truncate=False)  # builds the untruncated copy, to record it too
    recording, counting = Recording(tok._tok), Recording(tok._untruncated)
    monkeypatch.setattr(tok, "_tok", recording)
    monkeypatch.setattr(tok, "_untruncated", counting)
    vector = next(model.embed(big))
    assert model.token_counts([big]) == [model.max_length]
    with pytest.raises(TextTooLongError) as caught:
        model.embed_with_usage(["tea", big], truncate=False)
    assert recording.longest <= tok.max_chars, (recording.longest, tok.max_chars)
    assert counting.longest <= COUNT_PIECE_CHARS + 1
    assert vector.shape == (384,) and caught.value.index == 1
    monkeypatch.undo()
    words = _words(30_000, 3)  # the count in pieces is the count of the whole text
    assert tok.count([words], truncate=False) == [len(tok._untruncated.encode(words).ids)]


def test_the_first_cut_is_max_length_times_the_longest_piece(model):
    tok = model.tokenizer
    assert tok.longest_piece == max(len(p) for p in tok.tokenizer.get_vocab(with_added_tokens=True))
    assert tok.max_chars == model.max_length * (tok.longest_piece + 1)
