"""The built x86_64 runtime layer, model layer and function code, run by a real CPython of the
layer's version (Lambda's python3.12 or python3.13), with only what Lambda's image adds (boto3)
beside them. `-B`: nothing may write byte code into build/layers (a .pyc compiled by a Python
other than Lambda's would ship in the zip and never be used)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from _layers import (
    BUILD,
    CHILD,
    FUNCTION,
    MODELS,
    TEXTS,
    embed_event,
    install_lambda_provided,
    lambda_env,
    layer_python_version,
    parse_child,
)

pytestmark = pytest.mark.layers

RUNTIME = BUILD / "layers" / "x86_64" / "runtime" / "python"


def cpython(version: str) -> str:
    """$PYTHON<major><minor> (e.g. PYTHON313), else python<version> on PATH, else a pyenv build:
    the first that runs (a pyenv shim on PATH may name a version pyenv has not selected)."""
    pyenv = os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")
    candidates = [
        os.environ.get("PYTHON" + version.replace(".", "")),
        shutil.which(f"python{version}"),
        *sorted(glob.glob(pyenv)),
    ]
    for found in filter(None, candidates):
        probe = subprocess.run([found, "-c", "import sys"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return found
    pytest.fail(f"no CPython {version} (set PYTHON{version.replace('.', '')}): the layer's")


def test_layers_serve_embed_on_the_layers_cpython(tmp_path):
    for path in (RUNTIME, MODELS, FUNCTION):
        assert path.is_dir(), f"{path} missing: run `make layers`"
    version = layer_python_version("x86_64")
    byte_code_before = sorted(RUNTIME.rglob("*.pyc")) + sorted(FUNCTION.rglob("*.pyc"))
    event = embed_event(TEXTS[:2])
    out = subprocess.run(
        [cpython(version), "-B", "-s", "-c", CHILD, json.dumps(event)],
        capture_output=True,
        text=True,
        env=lambda_env([RUNTIME, FUNCTION, install_lambda_provided()]),
        cwd=tmp_path,
        timeout=120,
    )
    result = parse_child(out)
    assert result["python"] == [int(x) for x in version.split(".")]
    assert result["status"] == 200, result["body"]
    assert len(result["body"]) == 2 and all(len(v) == 384 for v in result["body"])
    for f in result["files"]:  # numpy, onnxruntime, tokenizers came from the layer
        assert f.startswith(str(RUNTIME)), f
    byte_code_after = sorted(RUNTIME.rglob("*.pyc")) + sorted(FUNCTION.rglob("*.pyc"))
    assert byte_code_after == byte_code_before, "the run wrote byte code into the artifacts"
    # The same vectors the library gives on this Python from the same model layer.
    from kettle import TextEmbedding

    ours = np.stack(list(TextEmbedding(models_dir=MODELS).embed(TEXTS[:2])))
    np.testing.assert_allclose(np.asarray(result["body"]), ours, atol=1e-4)
