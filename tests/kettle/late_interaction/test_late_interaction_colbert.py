"""LateInteractionTextEmbedding on a tiny random ColBERT baked through models_bake, against the
independent numpy BERT + projection + normalisation, with ids built by hand."""

from __future__ import annotations

import numpy as np
import pytest
from _colbert_tiny import (
    DIM,
    IDS,
    MAX_LENGTH,
    QUERY_LENGTH,
    description,
    reference_document,
    reference_query,
    write_checkpoint,
)

from kettle.late_interaction import LateInteractionTextEmbedding, maxsim
from kettle.registry import register_model, unregister_model
from models_bake.bake import bake

NAME = "test/colbert-tiny"
DOCS = [
    "The cat sat on the mat.",
    "Late interaction scores tokens with MaxSim!",
    "bread needs yeast; the ocean waves are blue, red (and green).",
    "search",
    "",
]
QUERIES = ["cat on a mat?", "maxsim", "what does bread need"]
ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("colbert-ckpt")
    cfg, sd = write_checkpoint(directory)
    return directory, cfg, sd


@pytest.fixture(scope="module")
def baked(checkpoint, tmp_path_factory):
    register_model(description(NAME, checkpoint[0]))
    out = tmp_path_factory.mktemp("models")
    cache = tmp_path_factory.mktemp("cache")
    yield bake(NAME, out=out, quantize="none", cache=cache)
    unregister_model(NAME)


@pytest.fixture(scope="module")
def model(baked):
    return LateInteractionTextEmbedding(NAME, models_dir=baked.path.parents[1])


def test_bake_adds_the_projection(baked):
    manifest = baked.manifest
    assert manifest.kind == "late_interaction" and manifest.dim == DIM
    assert manifest.onnx["outputs"] == ["token_embeddings"]
    assert manifest.extra["converter"]["output"] == "token_embeddings"
    assert manifest.extra["converter"]["dim"] == DIM
    assert manifest.quantization["fusion"]["Attention"] == 2  # fused like any BERT bake


def test_documents_match_reference(model, checkpoint):
    _, cfg, sd = checkpoint
    got = list(model.embed(DOCS, batch_size=2))
    for text, vecs in zip(DOCS, got, strict=True):
        want = reference_document(cfg, sd, text)
        assert vecs.shape == want.shape and vecs.dtype == np.float32, text
        np.testing.assert_allclose(vecs, want, atol=ATOL, err_msg=text)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # punctuation is dropped: "The cat sat on the mat." keeps [CLS] [D] 6 words [SEP]
    assert len(got[0]) == 9 and len(got[4]) == 3


def test_queries_are_augmented_with_masks(model, checkpoint):
    _, cfg, sd = checkpoint
    got = list(model.query_embed(QUERIES))
    for text, vecs in zip(QUERIES, got, strict=True):
        assert vecs.shape == (QUERY_LENGTH, DIM), text
        np.testing.assert_allclose(vecs, reference_query(cfg, sd, text), atol=ATOL, err_msg=text)
    tokens = model.encode_queries(["cat on a mat?"])[0]
    assert tokens.ids[:2] == [IDS["[CLS]"], IDS["[unused0]"]]
    assert tokens.ids[-1] == IDS["[MASK]"] and tokens.attention_mask[-1] == 0
    assert IDS["?"] in tokens.ids  # queries keep punctuation


def test_long_queries_and_documents(model, checkpoint):
    _, cfg, sd = checkpoint
    long_query = " ".join(["tree", "moon"] * 10)  # 20 words: longer than QUERY_LENGTH
    (vecs,) = model.query_embed(long_query)
    assert vecs.shape == (23, DIM)  # [CLS] [Q] 20 words [SEP], no masks
    np.testing.assert_allclose(vecs, reference_query(cfg, sd, long_query), atol=ATOL)
    long_doc = " ".join(["sun", ",", "star"] * 20)  # truncated to MAX_LENGTH tokens
    (vecs,) = model.embed([long_doc])
    want = reference_document(cfg, sd, long_doc)
    assert len(vecs) == len(want) < MAX_LENGTH
    np.testing.assert_allclose(vecs, want, atol=ATOL)


def test_token_counts_include_the_marker(model):
    docs = ["The cat sat on the mat.", " ".join(["sun"] * 60)]
    encoded = model.encode_documents(docs)
    assert model.token_counts(docs) == [len(e.ids) for e in encoded] == [10, MAX_LENGTH]
    assert model.token_counts(docs, truncate=False) == [10, 63]  # [CLS] [D] 60 words [SEP]


def test_embed_with_usage_counts_what_the_model_reads(model):
    docs = ["The cat sat on the mat.", " ".join(["sun"] * 60)]
    got = model.embed_with_usage(docs)
    assert got.token_counts == model.token_counts(docs) == [10, MAX_LENGTH]
    for a, b in zip(got.vectors, model.embed(docs), strict=True):
        np.testing.assert_array_equal(a, b)
    queries = model.embed_with_usage(["cat on a mat?"], kind="query")
    assert queries.vectors[0].shape == (QUERY_LENGTH, DIM)
    assert queries.token_counts == [8]  # [CLS] [Q] cat on a mat ? [SEP]; [MASK] padding not billed
    raw = model.embed_with_usage(docs[:1], normalize=False).vectors[0]
    np.testing.assert_allclose(
        raw / np.linalg.norm(raw, axis=1, keepdims=True), got.vectors[0], atol=1e-5
    )
    from kettle.errors import TextTooLongError

    with pytest.raises(TextTooLongError, match=r"texts\[1\] has 63 tokens"):
        model.embed_with_usage(docs, truncate=False)


def test_batching_does_not_change_vectors(model):
    texts = DOCS * 3 + [" ".join(["apple"] * n) for n in range(1, 30, 4)]
    together = list(model.embed(texts, batch_size=4))
    alone = [next(model.embed([t])) for t in texts]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    queries = QUERIES + [" ".join(["tree"] * 15)]  # a long query pads the others with [PAD]
    batched = list(model.query_embed(queries, batch_size=8))
    for text, vecs in zip(queries, batched, strict=True):
        np.testing.assert_allclose(vecs, next(model.query_embed(text)), atol=1e-5)


def test_rank_orders_by_maxsim(model):
    ranked = model.rank("bread yeast", DOCS)
    query = next(model.query_embed("bread yeast"))
    scores = [maxsim(query, d) for d in model.embed(DOCS)]
    assert [i for i, _ in ranked] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    np.testing.assert_allclose([s for _, s in ranked], sorted(scores, reverse=True), rtol=1e-5)
    assert len(model.rank("bread yeast", DOCS, top_k=2)) == 2


def test_bad_input_names_the_item(model):
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        list(model.embed(["ok", None]))
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        list(model.query_embed([3]))
    with pytest.raises(TypeError, match="query is list"):
        model.rank(["a"], DOCS)


@pytest.mark.bakes
def test_int8_bake_reports_token_fidelity(checkpoint, tmp_path):
    name = NAME + "-int8"
    register_model(description(name, checkpoint[0]))
    try:
        # Random weights: retrieval is near chance, so its nDCG ratio is noise; gate it loosely.
        result = bake(
            name,
            out=tmp_path / "m",
            quantize="int8",
            min_cosine=0.5,
            cache=tmp_path,
            gates={"ndcg_ratio": 0.5, "min_cosine": 0.0, "top10_agreement": 0.0},
        )
    finally:
        unregister_model(name)
    figures = result.manifest.fidelity
    assert 0.5 <= figures["mean_cosine"] <= 1.0
    assert figures["n_queries"] == 32 and figures["n_tokens"] > figures["n_texts"]
    assert 0.0 <= figures["maxsim_top10_agreement"] <= 1.0
    assert figures["batch_invariance_min_cosine"] >= 0.9999  # per-row int8: batch-invariant
    assert 0.0 < figures["ndcg10_reference"] <= 1.0 and "ndcg_ratio" in figures


def test_checkpoint_without_projection_is_refused(tmp_path):
    write_checkpoint(tmp_path / "ckpt", projection=False)
    name = NAME + "-noproj"
    register_model(description(name, tmp_path / "ckpt"))
    try:
        with pytest.raises(KeyError, match="linear.weight"):
            bake(name, out=tmp_path / "m", quantize="none", cache=tmp_path)
    finally:
        unregister_model(name)
