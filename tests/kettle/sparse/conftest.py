"""The tiny SPLADE: the int8 bake `make models` leaves in <repo>/models, and an fp32 bake made
once per session into a temporary folder (from the wheel `make models` cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kettle.registry import DEFAULT_SPARSE_MODEL
from models_bake.bake import bake
from tests.conftest import MODELS, REPO


@pytest.fixture(scope="session")
def splade_models_dir() -> Path:
    """<repo>/models with the int8 tiny SPLADE; fails (never skips) when it is not baked."""
    if not (MODELS / DEFAULT_SPARSE_MODEL / "manifest.json").is_file():
        pytest.fail(f"{MODELS / DEFAULT_SPARSE_MODEL} is not baked: run `make models` first")
    return MODELS


@pytest.fixture(scope="session")
def splade_fp32_dir(tmp_path_factory) -> Path:
    """A full-precision bake of the tiny SPLADE, for parity with the torch reference."""
    out = tmp_path_factory.mktemp("splade-fp32")
    bake(DEFAULT_SPARSE_MODEL, out=out, quantize="none", cache=REPO / ".cache")
    return out
