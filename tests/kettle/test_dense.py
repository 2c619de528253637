import itertools
import json
import shutil

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.manifest import Manifest
from kettle.registry import DEFAULT_MODEL
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


def one_by_one(model, texts):
    return np.stack([next(model.embed([t])) for t in texts])


def test_shapes_dtype_and_unit_norm(model):
    vectors = np.stack(list(model.embed(["hello world", "a second text"])))
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.embedding_size == 384


def test_order_restored_across_sorted_batches(model):
    rng = np.random.default_rng(1)
    words = "tea kettle water boil steam leaf cup pour hot cold".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 120))) for _ in range(40)]
    batched = np.stack(list(model.embed(texts, batch_size=4)))
    alone = one_by_one(model, texts)
    # Dynamic int8 scales activations per batch, so a vector moves slightly with its batch
    # neighbours; each must still be its own text's vector, and the closest one.
    sims = batched @ alone.T
    assert (sims.argmax(axis=1) == np.arange(len(texts))).all()
    assert np.diag(sims).min() > 0.99


def test_single_string_and_generator_input(model):
    single = list(model.embed("just one"))
    assert len(single) == 1
    gen = (t for t in ["a", "b", "c"])
    assert len(list(model.embed(gen))) == 3


def test_streaming_consumes_input_lazily(model):
    pulled = 0

    def endless():
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield f"text number {i}"

    stream = model.embed(endless(), batch_size=64)
    first = next(stream)
    assert first.shape == (384,)
    assert pulled <= 2048 + 1  # one window, never the whole (endless) input


@pytest.mark.parametrize("bad, index", [([None], 0), (["ok", 3], 1), (["a", "b", b"bytes"], 2)])
def test_non_string_items_name_their_index(model, bad, index):
    with pytest.raises(TypeError, match=rf"texts\[{index}\]"):
        list(model.embed(bad))


def test_none_is_not_turned_into_text(model):
    with pytest.raises(TypeError, match="None is not text"):
        list(model.embed(["fine", None]))


def test_token_count_without_session(models_dir):
    fresh = TextEmbedding(models_dir=models_dir)
    counts = fresh.token_counts(["hello", "", "word " * 1000])
    assert counts[0] == 3 and counts[1] == 2  # [CLS] hello [SEP]; [CLS] [SEP]
    assert counts[2] == 256  # truncated at the model's max_length
    assert fresh.token_counts(["word " * 1000], truncate=False)[0] == 1002
    assert fresh.token_count(["hello", "hello"]) == 6
    assert fresh._session is None  # counting never built the ONNX session


def test_max_length_lowers_truncation(models_dir, model):
    short = TextEmbedding(models_dir=models_dir, max_length=16, threads=1)
    long_text = "alpha beta gamma delta " * 50
    assert short.token_counts([long_text]) == [16]
    prefix_only = " ".join(long_text.split()[:14])  # 14 words + 2 special tokens
    np.testing.assert_allclose(
        next(short.embed([long_text])), next(model.embed([prefix_only])), atol=2e-5
    )
    with pytest.raises(ValueError, match="max_length must be in 1..256"):
        TextEmbedding(models_dir=models_dir, max_length=1000)


def test_matches_sentence_transformers_reference(model):
    """int8 against sentence-transformers' fp32 vectors (fixture made once with torch)."""
    ref = json.loads((FIXTURES / "minilm_reference.json").read_text())
    ours = np.stack(list(model.embed(ref["texts"])))
    cos = (ours * np.asarray(ref["embeddings"])).sum(axis=1)
    assert cos.min() > 0.95, cos
    assert cos.mean() > 0.98, cos


def test_query_and_passage_prefixes(models_dir, tmp_path):
    shutil.copytree(models_dir / DEFAULT_MODEL, tmp_path / DEFAULT_MODEL)
    manifest = Manifest.read(tmp_path / DEFAULT_MODEL)
    manifest.query_prefix, manifest.passage_prefix = "query: ", "passage: "
    manifest.write(tmp_path / DEFAULT_MODEL)
    m = TextEmbedding(models_dir=tmp_path, threads=1)
    np.testing.assert_allclose(next(m.query_embed("tea")), next(m.embed(["query: tea"])), atol=1e-6)
    np.testing.assert_allclose(
        next(m.passage_embed(["tea"])), next(m.embed(["passage: tea"])), atol=1e-6
    )
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        list(m.query_embed(["ok", None]))


def test_list_supported_models():
    names = [m["model"] for m in TextEmbedding.list_supported_models()]
    assert DEFAULT_MODEL in names
    assert all(m["kind"] == "dense" for m in TextEmbedding.list_supported_models())


# ---- token vectors (TEI's /embed_all) ---------------------------------------------------------
def test_embed_tokens_are_the_rows_embed_pools(model):
    texts = ["tea", "a kettle boils water for the tea pot", "x " * 300]
    tokens = list(model.embed_tokens(texts, batch_size=2))
    assert [t.shape for t in tokens] == [(n, 384) for n in model.token_counts(texts)]
    assert all(t.dtype == np.float32 for t in tokens)
    raw = np.stack(list(model.embed(texts, batch_size=2, normalize=False)))  # mean pooling
    np.testing.assert_allclose(np.stack([t.mean(axis=0) for t in tokens]), raw, atol=1e-5)
    usage = model.embed_tokens_with_usage(texts, kind="query")
    assert usage.token_counts == [len(t) for t in usage.vectors]
    with pytest.raises(ValueError, match="texts\\[2\\]"):
        list(model.embed_tokens(texts, truncate=False))


def test_embed_tokens_refuses_a_graph_that_pools_inside(model):
    # CLIP's text tower bakes with text_embeds [batch, dim] as its output: no token rows
    with pytest.raises(ValueError, match="no token-level output"):
        model._token_step(np.zeros((2, 384), np.float32), np.ones((2, 5), np.int64))
