"""The real MiniLM and MPNet int8 bakes of `make models` (the default command) held to issue 21's
targets against sentence-transformers fp32, on held-out texts the bake's gate and calibration
never saw (tests/fixtures/st_reference_*.json, made by tools/make_st_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.manifest import Manifest
from models_bake.verify import row_cosines
from tests.conftest import MODELS
from tests.st_reference import load

# The bakes' fidelity on real weights, MPNet's 204 texts through fp32 and int8: with the bakes.
pytestmark = pytest.mark.bakes

MPNET = "sentence-transformers/all-mpnet-base-v2"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TARGET_MEAN, TARGET_MIN, ALONE_MIN = 0.995, 0.98, 0.9999


def _baked(name: str) -> TextEmbedding:
    if not (MODELS / name / "manifest.json").is_file():
        pytest.fail(f"{MODELS / name} is not baked: run `make models` first")
    return TextEmbedding(name, models_dir=MODELS, threads=2)


@pytest.mark.parametrize("name", [MINILM, MPNET])
def test_int8_meets_the_targets_against_sentence_transformers(name):
    texts, reference, _ = load(name)
    model = _baked(name)
    ours = np.stack(list(model.embed(texts)))
    cos = row_cosines(reference.astype(np.float64), ours.astype(np.float64))
    worst = sorted(zip(cos.round(5), texts, strict=True))[:3]
    assert cos.mean() >= TARGET_MEAN and cos.min() >= TARGET_MIN, (cos.mean(), worst)
    # a text alone gives the vector it has in a batch (per-row scales: nothing shared)
    alone = np.stack([next(model.embed([t], batch_size=1)) for t in texts[:48]])
    assert row_cosines(alone, ours[:48]).min() >= ALONE_MIN


def test_mpnet_is_baked_from_its_split_pypi_wheels_with_the_default_command():
    _baked(MPNET)
    m = Manifest.read(MODELS / MPNET)
    assert m.source["type"] == "pypi-split" and len(m.source["parts"]) == 4
    q = m.quantization
    assert q["scheme"] == "int8" and "auto_search" not in q  # not --quantize auto
    assert q["method"] == "rowwise" and q["smooth_alpha"] > 0 and not q["keep_fp32"]
    assert m.fidelity["min_cosine_gate"] == 0.99  # the default gates
    assert m.fidelity["batch_invariance_min_cosine"] >= ALONE_MIN
    assert (MODELS / MPNET / "model.onnx").stat().st_size < 150e6  # int8, not 436 MB
