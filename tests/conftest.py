"""Shared test fixtures: the repository's baked models (made by `make models`)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
FIXTURES = REPO / "tests" / "fixtures"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """<repo>/models with the default model baked; fails (never skips) when it is not."""
    if not (MODELS / MINILM / "manifest.json").is_file():
        pytest.fail(f"{MODELS / MINILM} is not baked: run `make models` first")
    return MODELS
