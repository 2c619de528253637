"""int8 on an x86 CPU without VNNI, emulated: ``qemu-x86_64-static -cpu Haswell`` (AVX2, no
AVX-512, no VNNI) makes ONNX Runtime's MLAS pick its AVX2 U8S8 kernel, which adds two adjacent
u8 x s8 products in int16 and saturates. The default scheme's pair-safe int8 weights must give the
same vectors there as on the CPU the bake ran on; weights without the pair limit must not (which
shows the emulated CPU does reach the saturating kernel: the check is not vacuous).

qemu-user-static comes from ``make system-tools`` (the arm64 layer test needs it too).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from kettle.registry import DEFAULT_SPARSE_MODEL
from models_bake.rewrites import pooled_sparse_head, rowwise_matmuls
from tests.bake._graphs import matmul_graph, sparse_head_graph
from tests.conftest import MINILM, REPO

pytestmark = pytest.mark.emulates

QEMU = "qemu-x86_64-static"
TEXTS = [
    "The kettle is boiling.",
    "Tea and biscuits at four o'clock, 16:00 sharp!",
    "def f(x): return x ** 2  # squares",
    "Der Wasserkocher pfeift. Чайник кипит. やかんが沸いている。",
]

# Runs in the child: a graph file and an input, or the baked default model and TEXTS.
GRAPH_CHILD = """
import json, sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
print(json.dumps(s.run(None, {"x": x})[0].tolist()))
"""
HEAD_CHILD = """
import json, sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
print(json.dumps(s.run(None, {"x": x, "attention_mask": np.ones(x.shape[:2], np.int64)})[0].tolist()))
"""
MODEL_CHILD = """
import json, sys
from kettle import TextEmbedding
m = TextEmbedding(sys.argv[1], models_dir=sys.argv[2], threads=1)
print(json.dumps([v.tolist() for v in m.embed(json.loads(sys.argv[3]))]))
"""
SPARSE_CHILD = """
import json, sys
from kettle import SparseTextEmbedding
m = SparseTextEmbedding(sys.argv[1], models_dir=sys.argv[2], threads=1)
print(json.dumps([v.to_dense(m.vocab_size).tolist() for v in m.embed(json.loads(sys.argv[3]))]))
"""


def _child(code: str, *args: str, emulate: bool) -> np.ndarray:
    command = [sys.executable, "-B", "-c", code, *args]
    if emulate:
        command = [QEMU, "-cpu", "Haswell", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.array(json.loads(done.stdout.splitlines()[-1]), np.float64)


@pytest.fixture(scope="module")
def qemu() -> str:
    if shutil.which(QEMU) is None:
        pytest.fail(f"{QEMU} not found: run `make system-tools` (Debian's qemu-user-static)")
    return QEMU


def _weights(k: int = 384, n: int = 32) -> np.ndarray:
    """Large and all positive: without the pair limit, adjacent int8 weights sum to ~250."""
    return np.random.default_rng(0).uniform(0.8, 1.0, size=(k, n)).astype(np.float32)


def _graph(pair_safe: bool) -> onnx.ModelProto:
    model = matmul_graph(_weights())
    assert rowwise_matmuls(model, pair_safe=pair_safe) == 1
    return model


def test_pair_safe_int8_does_not_saturate_on_avx2(qemu, tmp_path):
    x = np.random.default_rng(1).uniform(0.9, 1.0, size=(2, 3, 384)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    results = {}
    for safe in (True, False):
        path = tmp_path / f"{'safe' if safe else 'unsafe'}.onnx"
        onnx.save(_graph(safe), path)
        results[safe] = _child(GRAPH_CHILD, str(path), str(tmp_path / "x.npy"), emulate=True)
    reference = x.astype(np.float64) @ _weights().astype(np.float64)
    error = {
        safe: np.abs(y - reference).max() / np.abs(reference).max() for safe, y in results.items()
    }
    assert error[True] < 0.01, error  # quantization error only
    assert error[False] > 0.2, error  # the int16 pair sums saturated


def test_pooled_sparse_head_does_not_saturate_on_avx2(qemu, tmp_path):
    """SPLADE's pooled head has the weights as uint8 (up to 255) and the activations as int8:
    pair-safe activation scales keep it exact on AVX2, plain per-row scales saturate."""
    w = _weights(n=64)
    bias = np.zeros(64, np.float32)
    x = np.random.default_rng(1).uniform(0.9, 1.0, size=(2, 3, 384)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    results = {}
    for safe in (True, False):
        model = sparse_head_graph(w, bias)
        assert pooled_sparse_head(model, pair_safe=safe, max_hidden=384) == "w"
        path = tmp_path / f"head-{'safe' if safe else 'unsafe'}.onnx"
        onnx.save(model, path)
        results[safe] = _child(HEAD_CHILD, str(path), str(tmp_path / "x.npy"), emulate=True)
    reference = (x.astype(np.float64) @ w.astype(np.float64)).max(axis=1)
    error = {
        safe: np.abs(y - reference).max() / np.abs(reference).max() for safe, y in results.items()
    }
    assert error[True] < 0.01, error  # quantization error only
    assert error[False] > 0.2, error  # the int16 pair sums saturated


@pytest.mark.parametrize(
    ("name", "child"),
    [
        (MINILM, MODEL_CHILD),
        ("sentence-transformers/all-mpnet-base-v2", MODEL_CHILD),  # smoothed weights too
        (DEFAULT_SPARSE_MODEL, SPARSE_CHILD),
    ],
)
def test_int8_bakes_give_the_same_vectors_on_avx2(qemu, models_dir, name, child):
    """The baked MiniLM, MPNet and SPLADE models (``make models``: per-row int8, pair-safe) natively
    and on an emulated Haswell: the integer MatMuls are exact on both, only float kernels'
    rounding differs."""
    manifest = json.loads((models_dir / name / "manifest.json").read_text())
    assert manifest["quantization"]["method"] == "rowwise"
    assert manifest["quantization"]["pair_safe"] is True
    args = (name, str(models_dir), json.dumps(TEXTS))
    native = _child(child, *args, emulate=False)
    emulated = _child(child, *args, emulate=True)
    cosine = (
        (native * emulated).sum(1)
        / np.linalg.norm(native, axis=1)
        / np.linalg.norm(emulated, axis=1)
    )
    # Saturation showed as 0.996 on MiniLM before pair-safe weights. MPNet's 12 layers carry one
    # text (the mixed-script one) to 0.99921 emulated against native (0.99840 without smoothing,
    # 1.000000 in fp32). Pair-safe weights cannot saturate; int8 rounding differing by kernel,
    # amplified over the layers, is the likely cause (not isolated further).
    bound = 0.999 if "mpnet" in name else 0.99999
    assert cosine.min() > bound, cosine
