"""truncation_direction="left" (TEI's): a text past max_length keeps its end; the prefix or named
prompt stays whole; a text that fits reads the same either way."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kettle import TextEmbedding

# Each word is one WordPiece token of MiniLM's vocabulary, so N words are N tokens and a tail of
# the token sequence is a tail of the words.
WORDS = "tea kettle water boil steam leaf cup pour hot cold".split()
LONG = " ".join(WORDS[i % len(WORDS)] + ("" if i % 7 else " green") for i in range(330))


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


def _words(text: str) -> list[str]:
    return text.split()


def test_left_keeps_the_end_and_right_the_start(model):
    words = _words(LONG)
    assert len(model.tokenizer.untruncated.encode(LONG).ids) > model.max_length
    room = model.max_length - 2  # [CLS] ... [SEP]
    left = model.embed_with_usage([LONG], truncation_direction="left")
    right = model.embed_with_usage([LONG])
    tail = model.embed_with_usage([" ".join(words[-room:])])
    head = model.embed_with_usage([" ".join(words[:room])])
    np.testing.assert_allclose(left.vectors, tail.vectors, atol=1e-6)
    np.testing.assert_allclose(right.vectors, head.vectors, atol=1e-6)
    assert float(left.vectors[0] @ right.vectors[0]) < 0.999
    assert left.token_counts == right.token_counts == [model.max_length]
    # TEI spells it "Left"; embed() streams the same vectors
    np.testing.assert_allclose(
        next(model.embed([LONG], truncation_direction="Left")), left.vectors[0], atol=1e-6
    )


def test_a_text_that_fits_reads_the_same_either_way(model):
    texts = ["a short text", "tea kettle water"]
    left = model.embed_with_usage(texts, truncation_direction="left")
    right = model.embed_with_usage(texts)
    np.testing.assert_array_equal(left.vectors, right.vectors)
    assert left.token_counts == right.token_counts


def test_left_keeps_the_prefix_and_the_named_prompt_whole(model, monkeypatch):
    manifest = dataclasses.replace(
        model.manifest, query_prefix="query: ", prompts={"search": "search for: "}
    )
    monkeypatch.setattr(TextEmbedding, "manifest", property(lambda self: manifest))
    words = _words(LONG)
    for options, prefix in (
        ({"kind": "query"}, "query: "),
        ({"prompt_name": "search"}, "search for: "),
    ):
        room = (
            model.max_length
            - 2
            - len(model.tokenizer.tokenizer.encode(prefix, add_special_tokens=False).ids)
        )
        left = model.embed_with_usage([LONG], truncation_direction="left", **options)
        want = model.embed_with_usage([prefix + " ".join(words[-room:])])
        np.testing.assert_allclose(left.vectors, want.vectors, atol=1e-6)
        assert left.token_counts == [model.max_length]


def test_token_vectors_follow_the_direction(model):
    words = _words(LONG)
    room = model.max_length - 2
    [left] = model.embed_tokens_with_usage([LONG], truncation_direction="left").vectors
    [tail] = model.embed_tokens_with_usage([" ".join(words[-room:])]).vectors
    np.testing.assert_allclose(left, tail, atol=1e-5)


def test_truncate_false_refuses_whichever_the_direction(model):
    from kettle.errors import TextTooLongError

    with pytest.raises(TextTooLongError):
        model.embed_with_usage(["ok", LONG], truncate=False, truncation_direction="left")


def test_an_unknown_direction_is_a_value_error(model):
    with pytest.raises(ValueError, match="truncation_direction"):
        model.embed_with_usage(["a"], truncation_direction="middle")
