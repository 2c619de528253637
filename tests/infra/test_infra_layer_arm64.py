"""The template's default deployment, arm64, executed: the built arm64 runtime layer, the model
layer and the function code run by Debian's aarch64 Python of the layer's version under
qemu-user (a Neoverse N1, Graviton2's core), and its /embed vectors compared with x86_64's.

The root filesystem is made once by `make emulator` (layers/arm64-rootfs.sh) outside the clone
and found through $KETTLE_ARM64_ROOTFS. fp32 kernels agree across CPUs to rounding. The default
int8 scheme's integer MatMuls are exact on both (per-row scales computed in the graph, pair-safe
int8 weights: no int16 saturation anywhere), so int8 arm64 and int8 x86_64 differ only where a
float kernel's rounding moves a value across a quantization step: held to 0.999 min cosine, and
int8 against fp32 to the bake's own gate (the manifest's min_cosine_gate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _layers import (
    BUILD,
    CHILD,
    FUNCTION,
    MODELS,
    REPO,
    TEXTS,
    embed_event,
    install_lambda_provided,
    lambda_env,
    layer_python_version,
    parse_child,
)

pytestmark = [pytest.mark.emulates, pytest.mark.layers]

RUNTIME = BUILD / "layers" / "arm64" / "runtime" / "python"
FP32 = BUILD / "layers" / "model-fp32"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FP32_MIN_COSINE = 0.9999
INT8_ACROSS_CPUS_MIN_COSINE = 0.999


def rootfs() -> Path:
    root = os.environ.get("KETTLE_ARM64_ROOTFS") or str(
        Path.home() / ".cache" / "kettle" / "debian-trixie-arm64"
    )
    if not (Path(root) / ".kettle-rootfs").is_file():
        pytest.fail(f"no arm64 root filesystem at {root}: run `make emulator`")
    return Path(root)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def fp32_models() -> Path:
    """The default model baked without quantization (the same bake, --quantize none)."""
    args = ["make", "--no-print-directory", "-s", "-C", str(REPO / "layers"), "model"]
    args += [f"PYTHON={sys.executable}", "QUANTIZE=none", f"OUT={FP32}", f"MODEL={MODEL}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return FP32 / "models"


@pytest.fixture(scope="module")
def arm64_run(fp32_models, tmp_path_factory) -> dict:
    for path in (RUNTIME, MODELS, FUNCTION):
        assert path.is_dir(), f"{path} missing: run `make layers`"
    root = rootfs()
    version = layer_python_version("arm64")
    python = root / "usr" / "bin" / f"python{version}"
    assert python.is_file(), (
        f"the arm64 layer is for Python {version}, the root filesystem has "
        f"{sorted(p.name for p in (root / 'usr' / 'bin').glob('python3.*'))}: build the layer "
        "with the root filesystem's version (layers/Makefile PYTHON_VERSION)"
    )
    env = lambda_env([RUNTIME, FUNCTION, install_lambda_provided()]) | {"QEMU_CPU": "neoverse-n1"}
    byte_code_before = sorted(RUNTIME.rglob("*.pyc"))
    out = subprocess.run(
        ["qemu-aarch64-static", "-L", str(root), str(python), "-B", "-s", "-c", CHILD]
        + [json.dumps(embed_event(TEXTS)), str(fp32_models)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path_factory.mktemp("arm64"),
        timeout=900,
    )
    result = parse_child(out)
    assert sorted(RUNTIME.rglob("*.pyc")) == byte_code_before, "byte code written into the layer"
    result["version"] = version
    return result


def test_arm64_layer_answers_embed_on_its_python(arm64_run):
    assert arm64_run["machine"] == "aarch64"
    assert arm64_run["python"] == [int(x) for x in arm64_run["version"].split(".")]
    assert arm64_run["status"] == 200, arm64_run["body"]
    assert len(arm64_run["body"]) == len(TEXTS)
    assert all(len(v) == 384 for v in arm64_run["body"])
    for f in arm64_run["files"]:  # numpy, onnxruntime, tokenizers: the layer's aarch64 builds
        assert f.startswith(str(RUNTIME)), f


def test_arm64_vectors_match_x86_64(arm64_run, fp32_models):
    from kettle import TextEmbedding

    x86_int8 = np.stack(list(TextEmbedding(MODEL, models_dir=MODELS).embed(TEXTS)))
    x86_fp32 = np.stack(list(TextEmbedding(MODEL, models_dir=fp32_models).embed(TEXTS)))
    arm_int8 = np.asarray(arm64_run["body"], dtype=np.float32)
    arm_fp32 = np.asarray(arm64_run["extra"], dtype=np.float32)

    fp32 = cosines(arm_fp32, x86_fp32)
    int8_vs_x86_int8 = cosines(arm_int8, x86_int8)
    int8_vs_fp32 = cosines(arm_int8, x86_fp32)
    x86_int8_vs_fp32 = cosines(x86_int8, x86_fp32)
    manifest = json.loads((MODELS / MODEL / "manifest.json").read_text())
    gate = manifest["fidelity"]["min_cosine_gate"]
    report = {
        "texts": len(TEXTS),
        "fp32 arm64 vs x86_64 min cosine": round(float(fp32.min()), 6),
        "int8 arm64 vs int8 x86_64 mean/min": [
            round(float(int8_vs_x86_int8.mean()), 6),
            round(float(int8_vs_x86_int8.min()), 6),
        ],
        "int8 arm64 vs fp32 mean/min": [
            round(float(int8_vs_fp32.mean()), 6),
            round(float(int8_vs_fp32.min()), 6),
        ],
        "int8 x86_64 vs fp32 mean/min": [
            round(float(x86_int8_vs_fp32.mean()), 6),
            round(float(x86_int8_vs_fp32.min()), 6),
        ],
        "int8 gate (mean vs fp32)": gate,
    }
    (BUILD / "layers" / "arm64-emulated.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert fp32.min() >= FP32_MIN_COSINE, report
    assert int8_vs_fp32.mean() >= gate, report
    # Measured 0.99996 mean, 0.99973 min here; per-batch activation scales (the scheme before
    # issue 10) were ~0.98-0.99 apart across CPUs.
    assert int8_vs_x86_int8.min() >= INT8_ACROSS_CPUS_MIN_COSINE, report


SPARSE_CHILD = r"""
import json, sys
from kettle import SparseTextEmbedding
m = SparseTextEmbedding(sys.argv[1], models_dir=sys.argv[2], threads=1)
print(json.dumps([v.to_dense(m.vocab_size).tolist() for v in m.embed(json.loads(sys.argv[3]))]))
"""


def test_arm64_sparse_int8_matches_x86_64(tmp_path):
    """make models' SPLADE bake (int8-mixed, the vocabulary head transposed and pooled in the
    graph: uint8 weights x pair-safe int8 activations) on the arm64 layer's ONNX Runtime under
    qemu, against x86_64: exact integer MatMuls on both (measured: cosine 1.000000)."""
    from kettle import SparseTextEmbedding
    from kettle.registry import DEFAULT_SPARSE_MODEL

    models = REPO / "models"
    manifest = json.loads((models / DEFAULT_SPARSE_MODEL / "manifest.json").read_text())
    assert manifest["onnx"]["output"] == "max_logits", "run `make models`"
    root = rootfs()
    python = root / "usr" / "bin" / f"python{layer_python_version('arm64')}"
    env = lambda_env([RUNTIME, FUNCTION]) | {"QEMU_CPU": "neoverse-n1"}
    out = subprocess.run(
        ["qemu-aarch64-static", "-L", str(root), str(python), "-B", "-s", "-c", SPARSE_CHILD]
        + [DEFAULT_SPARSE_MODEL, str(models), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    arm = np.asarray(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float64)
    model = SparseTextEmbedding(DEFAULT_SPARSE_MODEL, models_dir=models, threads=1)
    x86 = np.stack([v.to_dense(model.vocab_size) for v in model.embed(TEXTS)])
    assert arm.shape == x86.shape and (arm > 0).sum(axis=1).min() > 0
    assert cosines(arm, x86).min() >= INT8_ACROSS_CPUS_MIN_COSINE
