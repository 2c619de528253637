"""SparseTextEmbedding: parity with the torch reference, masking, pruning, order, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kettle.pooling import splade_pool
from kettle.registry import DEFAULT_MODEL, DEFAULT_SPARSE_MODEL
from kettle.sparse import SparseEmbedding, SparseTextEmbedding, splade_weights, to_sparse
from models_bake.verify import sparse_fidelity, top_k_overlap
from tests.conftest import FIXTURES, REPO


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURES / "splade_tiny_reference.json").read_text())


@pytest.fixture(scope="module")
def fp32(splade_fp32_dir) -> SparseTextEmbedding:
    return SparseTextEmbedding(models_dir=splade_fp32_dir, threads=1)


@pytest.fixture(scope="module")
def int8(splade_models_dir) -> SparseTextEmbedding:
    return SparseTextEmbedding(models_dir=splade_models_dir, threads=1)


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_fp32_matches_transformers_reference(fp32, reference, batch_size):
    assert fp32.manifest.quantization is None or fp32.manifest.quantization["weight_type"] == (
        "float32"
    )
    got = list(fp32.embed(reference["texts"], batch_size=batch_size))
    assert len(got) == len(reference["texts"])
    for text, vec, ref in zip(reference["texts"], got, reference["vectors"], strict=True):
        assert vec.indices.dtype == np.int32 and vec.values.dtype == np.float32
        assert vec.indices.tolist() == ref["indices"], f"support differs for {text!r}"
        np.testing.assert_allclose(vec.values, ref["values"], atol=1e-4, rtol=0, err_msg=text)


def test_splade_weights_equal_the_three_pass_definition():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 9, 50)).astype(np.float32) * 3
    right = np.array([[1] * n + [0] * (9 - n) for n in (9, 5, 1, 0)], dtype=np.int64)
    np.testing.assert_allclose(splade_weights(logits, right), splade_pool(logits, right), 1e-6)
    holes = rng.integers(0, 2, size=(4, 9)).astype(np.int64)  # not a right padding
    np.testing.assert_allclose(splade_weights(logits, holes), splade_pool(logits, holes), 1e-6)
    assert not splade_weights(logits, right)[3].any()  # a row with no token has no terms


def test_splade_weights_of_logits_the_graph_pooled():
    """An int8 bake's graph max-pools the logits over the mask itself (max_logits [batch,
    vocab]); the weights are the same as from the tokens' logits."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 7, 40)).astype(np.float32) * 3
    mask = np.array([[1] * n + [0] * (7 - n) for n in (7, 4, 1)], dtype=np.int64)
    pooled = np.stack([logits[b, mask[b] > 0].max(axis=0) for b in range(3)])
    np.testing.assert_array_equal(splade_weights(pooled, mask), splade_weights(logits, mask))


def test_top_k_keeps_the_largest_weights_sorted_by_id():
    weights = np.array([0.0, 0.5, 3.0, 0.0, 2.0, 0.1, 1.0], dtype=np.float32)
    pruned = to_sparse(weights, top_k=3)
    assert pruned.indices.tolist() == [2, 4, 6]
    assert pruned.values.tolist() == [3.0, 2.0, 1.0]
    assert to_sparse(weights, top_k=10).indices.tolist() == [1, 2, 4, 5, 6]


def test_top_k_through_the_model(int8, reference):
    full = list(int8.embed(reference["texts"]))
    pruned = list(int8.embed(reference["texts"], top_k=5))
    for f, p in zip(full, pruned, strict=True):
        assert len(p) == min(5, len(f))
        assert np.all(np.diff(p.indices) > 0)
        d = f.as_dict()
        assert sorted(p.values.tolist(), reverse=True) == sorted(d.values(), reverse=True)[:5]
        assert all(d[i] == v for i, v in p.as_dict().items())
    with pytest.raises(ValueError, match="top_k"):
        list(int8.embed(["x"], top_k=0))


def test_order_and_streaming(fp32):
    texts = [("word " * n).strip() for n in (40, 1, 7, 0, 120, 3, 3, 60)]
    one_by_one = [next(fp32.embed([t])) for t in texts]
    streamed = list(fp32.embed(iter(texts), batch_size=2))
    for a, b in zip(one_by_one, streamed, strict=True):
        assert a.indices.tolist() == b.indices.tolist()
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
    queries = list(fp32.query_embed(texts[:2]))
    assert [q.indices.tolist() for q in queries] == [v.indices.tolist() for v in one_by_one[:2]]


def test_int8_bake_reports_term_overlap_and_passes_the_gate(int8):
    fidelity = int8.manifest.fidelity
    assert int8.manifest.quantization["weight_type"] == "QInt8"
    assert fidelity["mean_cosine"] >= fidelity["min_cosine_gate"] == 0.995  # make models' gate
    assert fidelity["min_cosine"] >= fidelity["gates"]["min_cosine"] == 0.98
    for key in ("top10_term_overlap", "top32_term_overlap", "min_cosine"):
        assert 0.0 <= fidelity[key] <= 1.0, key
    assert fidelity["top10_term_overlap"] >= 0.9


def test_make_models_bake_is_the_first_scheme_that_passed(int8):
    """make models' SPLADE bake (--quantize auto): every scheme tried before the baked one
    failed the gate, the baked one passed. (Plain int8's min cosine, 0.97998 on the AMD EPYC
    this was written on, sits at the 0.98 gate: which of the two it is may differ by CPU.)"""
    q = int8.manifest.quantization
    *failed, chosen = q["auto_search"]
    assert all(not s["passed"] and s["failed"] for s in failed)
    assert chosen["passed"] and chosen["scheme"] == q["scheme"] in ("int8", "int8-mixed")
    assert int8.manifest.onnx["output"] == "max_logits"  # the head pooled in the graph


@pytest.mark.bakes
def test_auto_bake_keeps_the_most_sensitive_matmul_in_fp32(tmp_path):
    """--quantize auto with a min-cosine gate plain int8 misses (0.985 against its 0.983): one
    pass ranks the MatMuls by their own int8 error, the worst are kept in fp32 (int8-mixed), and
    the full gate confirms it."""
    import onnx

    from models_bake.bake import bake

    result = bake(
        DEFAULT_SPARSE_MODEL,
        out=tmp_path,
        quantize="auto",
        cache=REPO / ".cache",
        gates={"min_cosine": 0.985},
    )
    q = result.manifest.quantization
    first, *rest = q["auto_search"]
    assert first["scheme"] == "int8" and not first["passed"]
    assert any(f.startswith("min_cosine") for f in first["failed"])
    assert q["scheme"] == "int8-mixed" and rest[-1]["passed"] and rest[-1]["scheme"] == "int8-mixed"
    sensitivity = rest[0]["sensitivity"]
    # every MatMul of the 2-layer encoder (the pooled vocabulary head is not a per-row MatMul)
    assert len(sensitivity) == 13
    errors = [s["error"] for s in sensitivity]
    assert errors == sorted(errors, reverse=True) and errors[-1] > 0
    kept = q["keep_fp32"]
    assert kept == [s["weight"] for s in sensitivity[: len(kept)]] and 1 <= len(kept) < 13
    assert len(rest) <= 2  # the predicted keep set, doubled at most once
    graph = onnx.load(str(result.path / "model.onnx")).graph
    float_matmuls = {n.input[1] for n in graph.node if n.op_type == "MatMul"}
    assert set(kept) <= float_matmuls  # still fp32 MatMuls in the baked graph
    integer = sum(n.op_type == "MatMulIntegerToFloat" for n in graph.node)
    assert integer == 14 - len(kept)  # the vocabulary head is one of them, transposed
    assert result.manifest.fidelity["min_cosine"] >= 0.985


def test_int8_stays_close_to_fp32(int8, fp32, reference):
    for a, b in zip(fp32.embed(reference["texts"]), int8.embed(reference["texts"]), strict=True):
        da, db = a.to_dense(fp32.vocab_size), b.to_dense(int8.vocab_size)
        cos = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
        assert cos > 0.97


@pytest.mark.bakes  # the fidelity gate's measurement on the SPLADE bake
def test_sparse_measure(splade_fp32_dir, splade_models_dir):
    texts = ["the cat sat on the mat", "what is the capital of france?", ""]
    same = sparse_fidelity(DEFAULT_SPARSE_MODEL, splade_fp32_dir, splade_fp32_dir, texts)
    assert same["mean_cosine"] == pytest.approx(1.0) and same["top10_term_overlap"] == 1.0
    other = sparse_fidelity(DEFAULT_SPARSE_MODEL, splade_fp32_dir, splade_models_dir, texts)
    assert other["mean_cosine"] < 1.0


def test_top_k_overlap():
    a = np.array([[5.0, 4, 3, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    b = np.array([[5.0, 0, 3, 4, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]])
    # row 0: top-2 {0,1} vs {0,3} -> 1/2; row 1: both empty -> 1; row 2: {0} vs {1} -> 0
    assert top_k_overlap(a, b, 2) == pytest.approx((0.5 + 1 + 0) / 3)


def test_sparse_embedding_helpers():
    a = SparseEmbedding.from_dict({7: 0.5, 2: 1.5, 9: 0.0})
    assert a.indices.tolist() == [2, 7] and a.as_dict() == {2: 1.5, 7: 0.5}
    assert a.as_object() == {"indices": [2, 7], "values": [1.5, 0.5]}
    b = SparseEmbedding(np.array([1, 7], np.int32), np.array([2.0, 4.0], np.float32))
    assert a.dot(b) == pytest.approx(a.to_dense(10) @ b.to_dense(10)) == 2.0
    assert a.dot(SparseEmbedding.from_dict({})) == 0.0
    with pytest.raises(ValueError, match="term ids"):
        SparseEmbedding.from_dict({-1: 1.0})
    with pytest.raises(ValueError, match="one length"):
        SparseEmbedding(np.array([1, 2]), np.array([1.0]))


def test_bad_input_names_the_item(int8):
    with pytest.raises(TypeError, match=r"texts\[2\] is NoneType"):
        list(int8.embed(["a", "b", None]))


def test_a_dense_model_is_refused(splade_models_dir, models_dir):
    with pytest.raises(ValueError, match="dense model, not sparse"):
        SparseTextEmbedding(DEFAULT_MODEL, models_dir=models_dir)
    assert DEFAULT_SPARSE_MODEL in [m["model"] for m in SparseTextEmbedding.list_supported_models()]
