"""The built x86_64 runtime layer, model layer and function code, run by a real CPython 3.12 (the
Lambda runtime's version), with only what Lambda's python3.12 image adds (boto3) beside them."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
RUNTIME = BUILD / "layers" / "x86_64" / "runtime" / "python"
MODELS = BUILD / "layers" / "model" / "models"
FUNCTION = BUILD / "function"
# What the python3.12 Lambda image ships that the layer leaves out on purpose.
LAMBDA_PROVIDED = [
    "boto3==1.44.8",
    "botocore==1.44.8",
    "s3transfer==0.19.3",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "urllib3==2.8.0",
]

CHILD = r"""
import json, sys
import numpy, onnxruntime, tokenizers
from handler.app import api_handler

class Context:
    function_name = "kettle-api"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kettle-api"
    aws_request_id = "req-1"

event = json.loads(sys.argv[1])
response = api_handler(event, Context())
print(json.dumps({
    "python": sys.version_info[:2],
    "status": response["statusCode"],
    "body": json.loads(response["body"]),
    "files": [numpy.__file__, onnxruntime.__file__, tokenizers.__file__],
}))
"""


def python312() -> str:
    found = os.environ.get("PYTHON312") or next(
        iter(sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"))), None
    )
    if not found:
        pytest.fail("no CPython 3.12 found (set PYTHON312): the layer test needs Lambda's Python")
    return found


@pytest.fixture(scope="module")
def lambda_provided() -> Path:
    target = REPO / ".cache" / "lambda-python312-provided"
    if not (target / ".complete").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--disable-pip-version-check",
                "--target",
                str(target),
                *LAMBDA_PROVIDED,
            ],
            check=True,
        )
        (target / ".complete").write_text("\n".join(LAMBDA_PROVIDED))
    return target


def test_layers_serve_embed_on_python312(lambda_provided, tmp_path):
    for path in (RUNTIME, MODELS, FUNCTION):
        assert path.is_dir(), f"{path} missing: run `make layers`"
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/embed",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": "POST", "path": "/embed", "sourceIp": "127.0.0.1"},
            "requestId": "req-1",
            "stage": "$default",
        },
        "body": json.dumps({"inputs": ["hello from the Lambda layers", "second text"]}),
        "isBase64Encoded": False,
    }
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(map(str, (RUNTIME, FUNCTION, lambda_provided))),
        "KETTLE_MODELS_DIR": str(MODELS),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "POWERTOOLS_SERVICE_NAME": "kettle",
        "POWERTOOLS_METRICS_NAMESPACE": "kettle",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [python312(), "-s", "-c", CHILD, json.dumps(event)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["python"] == [3, 12]
    assert result["status"] == 200, result["body"]
    assert len(result["body"]) == 2 and all(len(v) == 384 for v in result["body"])
    for f in result["files"]:  # numpy, onnxruntime, tokenizers came from the layer, cp312 builds
        assert f.startswith(str(RUNTIME)), f
    # The same vectors the library gives on this Python from the same model layer.
    import numpy as np

    from kettle import TextEmbedding

    ours = np.stack(
        list(TextEmbedding(models_dir=MODELS).embed(json.loads(event["body"])["inputs"]))
    )
    np.testing.assert_allclose(np.asarray(result["body"]), ours, atol=1e-4)
