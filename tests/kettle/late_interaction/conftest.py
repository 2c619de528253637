"""Late-interaction tests: a tiny random ColBERT baked from a local source, and the baked
all-MiniLM-L6-v2 (models/) whose token outputs stand in for the MaxSim maths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(
    0, str(REPO / "tests" / "bake" / "convert")
)  # _convert_ref: random BERT + numpy forward

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """<repo>/models (or $KETTLE_MODELS_DIR), which must hold the all-MiniLM-L6-v2 bake."""
    path = Path(os.environ.get("KETTLE_MODELS_DIR") or REPO / "models")
    if not (path / MINILM / "manifest.json").is_file():
        pytest.fail(
            f"{path / MINILM} is not baked; run `make models` or "
            f".venv/bin/python -m models_bake {MINILM} --out {path}"
        )
    return path
