"""The per-row int8 rewrite, the gate and the broad evaluation set, on small graphs (no bake)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models_bake import verify
from models_bake.rewrites import pooled_sparse_head, rowwise_matmuls, split_skip_layer_norms
from tests.bake._graphs import matmul_graph, sparse_head_graph


def matmul_model(k: int = 64, n: int = 48, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    w = np.random.default_rng(seed).normal(size=(k, n)).astype(np.float32)
    return matmul_graph(w), w


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("weight_type", "reduce_range"), [("QInt8", False), ("QUInt8", False), ("QInt8", True)]
)
def test_rowwise_matmul_is_close_and_batch_invariant(weight_type, reduce_range):
    model, w = matmul_model()
    assert rowwise_matmuls(model, weight_type, reduce_range) == 1
    assert "MatMul" not in [n.op_type for n in model.graph.node]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 64)).astype(np.float32)
    x[0, 0] *= 1000  # one outlier row must not coarsen the other rows' scales
    x[2, 3] = 0.0  # an all-zero row stays zero
    y = run(model, x)
    ref = x @ w
    cos = verify.row_cosines(ref.reshape(-1, 48), y.reshape(-1, 48))
    assert cos.min() > (0.998 if reduce_range else 0.999) and np.all(y[2, 3] == 0)
    for b in range(4):  # each sequence alone gives bit-identical rows
        np.testing.assert_array_equal(run(model, x[b : b + 1])[0], y[b])


def test_rowwise_quantizes_a_shared_input_once():
    """Q, K and V read one activation: one QuantizeLinear feeds the three integer MatMuls."""
    model, _ = matmul_model()
    w2 = np.ones((64, 8), np.float32)
    model.graph.initializer.append(numpy_helper.from_array(w2, "w2"))
    model.graph.node.append(helper.make_node("MatMul", ["x", "w2"], ["y2"]))
    model.graph.output.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["b", "s", 8]))
    assert rowwise_matmuls(model) == 2
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("MatMulIntegerToFloat") == 2


def skip_layer_norm_model(h: int = 16) -> onnx.ModelProto:
    """y = SkipLayerNormalization(x, skip, gamma, beta, bias), with its sum output (index 3)."""
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.normal(size=h).astype(np.float32), name)
        for name in ("gamma", "beta", "bias")
    ]
    node = helper.make_node(
        "SkipLayerNormalization",
        ["x", "skip", "gamma", "beta", "bias"],
        ["y", "", "", "sum"],
        domain="com.microsoft",
        epsilon=1e-12,
    )
    shape = ["b", "s", h]
    graph = helper.make_graph(
        [node],
        "sln",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "skip")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("y", "sum")],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def test_split_skip_layer_norm_gives_the_fused_kernels_numbers():
    model = skip_layer_norm_model()
    rng = np.random.default_rng(3)
    feed = {n: rng.normal(size=(2, 7, 16)).astype(np.float32) for n in ("x", "skip")}

    def outputs(m: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, feed)

    fused = outputs(model)
    bias = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "bias"))
    np.testing.assert_allclose(fused[1], feed["x"] + feed["skip"] + bias, atol=1e-5)
    assert split_skip_layer_norms(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Add", "Add", "LayerNormalization"]
    for got, want in zip(outputs(model), fused, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_split_skip_layer_norm_needs_opset_17():
    model = skip_layer_norm_model()
    model.opset_import[0].version = 16  # no LayerNormalization operator: left fused
    assert split_skip_layer_norms(model) == 0
    assert [n.op_type for n in model.graph.node] == ["SkipLayerNormalization"]


def int8_weights(model: onnx.ModelProto) -> list[np.ndarray]:
    return [
        numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.data_type == TensorProto.INT8 and len(i.dims) == 2
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_safe_weights_cannot_saturate_int16_pairs(seed):
    """AVX2's U8S8 kernel adds products of adjacent K rows in int16: 255 x (|q0| + |q1|) must stay
    under 32767, so every adjacent pair of int8 weights sums to at most 128 in magnitude."""
    _, w = matmul_model(k=65, seed=seed)  # odd K: the last row pairs with padding
    model = matmul_graph(w**3)  # heavy tails, as trained weights have
    rowwise_matmuls(model)
    (wq,) = int8_weights(model)
    q = np.abs(np.concatenate([wq, np.zeros((1, wq.shape[1]), np.int8)]).astype(np.int32))
    assert (q[0::2] + q[1::2]).max() <= 128 and q.max() <= 127
    unsafe, _ = matmul_model(k=65, seed=seed)
    rowwise_matmuls(unsafe, pair_safe=False)
    (wu,) = int8_weights(unsafe)
    wu = np.abs(wu.astype(np.int32))
    assert (wu[0:64:2] + wu[1:64:2]).max() > 128  # the check above is not vacuous


def test_rowwise_leaves_activation_matmuls_alone():
    model, _ = matmul_model()
    model.graph.node[0].input[1] = "x2"  # no constant weight: X @ X2 stays float
    model.graph.input.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [64, 48]))
    assert rowwise_matmuls(model) == 0
    assert [n.op_type for n in model.graph.node] == ["MatMul"]


def sparse_head(k: int = 64, n: int = 300, seed: int = 3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, n)).astype(np.float32) * 0.1
    bias = rng.normal(size=n).astype(np.float32) - 2
    return sparse_head_graph(w, bias), w, bias


def run_head(
    model: onnx.ModelProto, x: np.ndarray, mask: np.ndarray, output: str = ""
) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output] if output else None
    return session.run(names, {"x": x, "attention_mask": mask})[0]


def test_pooled_sparse_head_is_the_masked_max_of_the_logits():
    model, w, bias = sparse_head()
    assert pooled_sparse_head(model) == "w"
    assert [o.name for o in model.graph.output] == ["max_logits"]
    assert "MatMul" not in [n.op_type for n in model.graph.node]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 6, 64)).astype(np.float32)
    x[0, 1] *= 100  # an outlier token must not coarsen the others' scales
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]])
    x[mask == 0] = 50.0  # padding: its logits are the largest, and must not count
    pooled = run_head(model, x, mask)
    logits = x @ w + bias
    ref = np.stack([logits[b, mask[b] > 0].max(axis=0) for b in range(4)])
    assert pooled.shape == (4, 300)
    assert np.abs(pooled - ref).max() < 0.02 * np.abs(ref).max()  # int8 error only
    for b in range(4):  # each text alone, without the others' padding: the same numbers
        keep = mask[b] > 0
        alone = run_head(model, x[b : b + 1, keep], mask[b : b + 1, keep])
        np.testing.assert_allclose(alone[0], pooled[b], rtol=0, atol=1e-5)


@pytest.mark.parametrize("pair_safe", [True, False])
def test_pooled_head_activations_are_pair_safe(pair_safe):
    """The head's int8 side is the activations: with ``pair_safe`` two adjacent ones sum to at
    most 128 in magnitude (255 x 128 < 32767: AVX2's int16 pairs cannot saturate)."""
    model, _, _ = sparse_head()
    pooled_sparse_head(model, pair_safe=pair_safe)
    model.graph.output.append(
        helper.make_tensor_value_info("sparse_head_xq", TensorProto.INT8, ["m", 64])
    )
    rng = np.random.default_rng(5)
    x = rng.uniform(0.9, 1.0, size=(2, 5, 64)).astype(np.float32)  # adjacent |x| all near max
    x[1] = rng.normal(size=(5, 64)) ** 3
    xq = np.abs(run_head(model, x, np.ones((2, 5), np.int64), "sparse_head_xq").astype(np.int32))
    pairs = xq[:, 0::2] + xq[:, 1::2]
    assert xq.max() <= 127
    assert (pairs.max() <= 128) if pair_safe else (pairs.max() > 200)


def test_pooled_head_leaves_other_graphs_alone():
    dense, _ = matmul_model()  # no logits output, no attention mask
    assert pooled_sparse_head(dense) is None
    assert [n.op_type for n in dense.graph.node] == ["MatMul"]
    kept, _, _ = sparse_head()
    assert pooled_sparse_head(kept, keep={"w"}) is None  # mixed precision keeps it fp32
    odd, _, _ = sparse_head(k=63)  # no adjacent pairs to bound
    assert pooled_sparse_head(odd) is None
    wide, _, _ = sparse_head(k=320)  # past max_hidden the transposed kernel is the slower one
    assert pooled_sparse_head(wide, max_hidden=256) is None
    for model in (kept, odd, wide):
        assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
        assert [o.name for o in model.graph.output] == ["logits"]


def test_gate_fails_on_any_figure():
    good = {
        "mean_cosine": 0.997,
        "min_cosine": 0.98,
        "top10_agreement": 0.95,
        "batch_invariance_min_cosine": 1.0,
        "ndcg_ratio": 1.0,
    }
    assert verify.gate_failures(good, 0.99) == []
    verify.gate(good, 0.99)
    for key, bad in [
        ("mean_cosine", 0.98),
        ("min_cosine", 0.9),
        ("top10_agreement", 0.5),
        ("batch_invariance_min_cosine", 0.99),
        ("ndcg_ratio", 0.9),
    ]:
        failures = verify.gate_failures(good | {key: bad}, 0.99)
        assert len(failures) == 1 and failures[0].startswith(key), failures
        with pytest.raises(verify.FidelityError, match=key):
            verify.gate(good | {key: bad}, 0.99)
    assert verify.gate_failures(good | {"ndcg_ratio": 0.9}, 0.99, {"ndcg_ratio": 0.8}) == []
    no_ndcg = {k: v for k, v in good.items() if k != "ndcg_ratio"}  # images: not gated
    assert verify.gate_failures(no_ndcg, 0.99) == []


def test_ndcg_at_10():
    perfect = np.eye(4)
    assert verify.ndcg_at_10(perfect) == 1.0
    second = np.array([[0.5, 1.0], [1.0, 0.5]])  # each relevant document ranked second
    assert verify.ndcg_at_10(second) == pytest.approx(1 / np.log2(3))
    missed = -np.eye(12)  # the relevant document is last of 12: outside the top 10
    assert verify.ndcg_at_10(missed) == 0.0


def test_eval_set_is_broad_and_not_stdlib():
    categories = verify.eval_categories()
    for name in ("queries", "scripts", "code", "numbers", "emoji", "long_past_max_length"):
        assert len(categories[name]) >= 5, name
    assert "" in categories["empty_and_one_word"]
    scripts = "".join(categories["scripts"])
    for lo, hi in [(0x0400, 0x04FF), (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0900, 0x097F),
                   (0x0E00, 0x0E7F), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF)]:  # fmt: skip
        assert any(lo <= ord(c) <= hi for c in scripts), hex(lo)
    data = verify.retrieval_set()
    assert data["source"].startswith("numpy==") and len(data["pairs"]) >= 100
    queries = {p["query"] for p in data["pairs"]}
    assert len(queries) == len(data["pairs"])
    assert not queries & {p["document"] for p in data["pairs"]}
    texts = verify.eval_texts()
    assert len(texts) > 400 and max(len(t.split()) for t in texts) > 300
    assert not any("Lookups search the underlying mappings" in t for t in texts)  # no stdlib


def outlier_activations(seed: int = 3) -> np.ndarray:
    """[4, 16, 64] activations with two channels ~40x the rest in every row, as base-size
    encoders' FFN inputs have (all-mpnet-base-v2: channels 555, 568, 461)."""
    x = np.random.default_rng(seed).normal(size=(4, 16, 64)).astype(np.float32)
    x[..., 7] *= 40
    x[..., 30] *= -25
    return x


def test_smoothing_keeps_the_product_and_shrinks_the_error_of_outlier_channels():
    from models_bake.rewrites import activation_ranges, smooth_factors

    x = outlier_activations()
    plain, w = matmul_model()
    smoothed, _ = matmul_model()
    ranges = {"x": np.abs(x).reshape(-1, 64).max(axis=0)}
    factors = smooth_factors(smoothed, ranges, 0.5)
    assert set(factors) == {"x"} and factors["x"][7] > 4 * np.median(factors["x"])
    rowwise_matmuls(plain)
    rowwise_matmuls(smoothed, smooth=factors)
    ref = (x @ w).reshape(-1, 48)

    def error(model):
        y = run(model, x).reshape(-1, 48)
        return np.linalg.norm(y - ref) / np.linalg.norm(ref)

    assert error(smoothed) < 0.5 * error(plain) and error(smoothed) < 0.01
    ops = [n.op_type for n in smoothed.graph.node]
    assert ops.count("Mul") == [n.op_type for n in plain.graph.node].count("Mul") + 1
    y = run(smoothed, x)
    for b in range(4):  # still batch-invariant: the factors are constants
        np.testing.assert_array_equal(run(smoothed, x[b : b + 1])[0], y[b])
    # the weights it quantizes are diag(s) w, still pair-safe
    wq = next(numpy_helper.to_array(i) for i in smoothed.graph.initializer if i.name == "rowq0_w")
    pairs = np.abs(wq[0::2].astype(np.int32)) + np.abs(wq[1::2].astype(np.int32))
    assert pairs.max() <= 128
    # the ranges the bake calibrates with come from one pass of the fp32 graph
    model, _ = matmul_model()
    found = activation_ranges_of(model, x, activation_ranges)
    np.testing.assert_allclose(found["x"], ranges["x"], rtol=1e-6)


def activation_ranges_of(model, x, activation_ranges):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, str(path))
        mask = np.ones(x.shape[:2], np.int64)
        return activation_ranges(path, [{"x": x, "attention_mask": mask}])


def test_matmul_errors_rank_the_matmul_with_outlier_input_first(tmp_path):
    """One pass of the int8 graph: each MatMul's output against its own int8-graph input times
    the fp32 weights; the one reading outlier channels unsmoothed has the largest error."""
    from models_bake.rewrites import matmul_errors

    rng = np.random.default_rng(4)
    w1, w2 = rng.normal(size=(64, 64)).astype(np.float32), rng.normal(size=(64, 8))
    scale = np.ones(64, np.float32)
    scale[[3, 50]] = 40.0
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Mul", ["h", "scale"], ["hs"]),  # outlier channels in hs
            helper.make_node("MatMul", ["hs", "w2"], ["y"]),
        ],
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 8])],
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(w2.astype(np.float32), "w2"),
            numpy_helper.from_array(scale, "scale"),
        ],
    )
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(fp32, str(tmp_path / "fp32.onnx"))
    int8 = onnx.load(str(tmp_path / "fp32.onnx"))
    rowwise_matmuls(int8)
    onnx.save(int8, str(tmp_path / "int8.onnx"))
    x = rng.normal(size=(2, 8, 64)).astype(np.float32)
    feeds = [{"x": x, "attention_mask": np.ones((2, 8), np.int64)}]
    errors = matmul_errors(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", feeds)
    assert [e["weight"] for e in errors] == ["w2", "w1"]
    assert errors[0]["error"] > 1.5 * errors[1]["error"] > 0
