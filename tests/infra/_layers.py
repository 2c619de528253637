"""Helpers for the tests that run the built Lambda artifacts (build/layers/, build/function/) on
a real interpreter of the layer's Python version: CPython for x86_64, Debian's Python under qemu
for arm64."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
MODELS = BUILD / "layers" / "model" / "models"
FUNCTION = BUILD / "function"

# What Lambda's python3.12 / python3.13 images ship that the layer leaves out on purpose.
LAMBDA_PROVIDED = [
    "boto3==1.44.8",
    "botocore==1.44.8",
    "s3transfer==0.19.3",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "urllib3==2.8.0",
]

TEXTS = [
    "hello from the Lambda layers",
    "A kettle boils water for tea.",
    "Graviton processors are Arm Neoverse cores.",
    "int8 kernels differ from one CPU to another",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "short",
    "The quarterly report is due on Friday; please send your figures by Wednesday noon.",
    "embeddings map sentences to vectors whose cosine reflects meaning",
]

# Run in the layer's interpreter: the handler answers POST /embed (the deployed model layer),
# and, given a second models folder, the library embeds the same texts with it (fp32).
CHILD = r"""
import json, sys
import numpy, onnxruntime, tokenizers, platform
from handler.app import api_handler

class Context:
    function_name = "kettle-api"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kettle-api"
    aws_request_id = "req-1"

event = json.loads(sys.argv[1])
response = api_handler(event, Context())
extra = None
if len(sys.argv) > 2:
    from kettle import TextEmbedding
    texts = json.loads(event["body"])["inputs"]
    extra = numpy.stack(list(TextEmbedding(models_dir=sys.argv[2]).embed(texts))).tolist()
print(json.dumps({
    "python": sys.version_info[:2],
    "machine": platform.machine(),
    "status": response["statusCode"],
    "body": json.loads(response["body"]),
    "extra": extra,
    "files": [numpy.__file__, onnxruntime.__file__, tokenizers.__file__],
}))
"""


def layer_python_version(arch: str) -> str:
    """The Python minor version build/layers/<arch>/runtime was built for (from its stamp)."""
    stamp = BUILD / "layers" / arch / "runtime.stamp"
    assert stamp.is_file(), f"{stamp} missing: run `make layers`"
    fields = dict(part.split("=", 1) for part in stamp.read_text().split())
    return fields["python"]


def embed_event(texts: list[str]) -> dict:
    return {
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
        "body": json.dumps({"inputs": texts}),
        "isBase64Encoded": False,
    }


def lambda_env(pythonpath: list[Path]) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ":".join(map(str, pythonpath)),
        "KETTLE_MODELS_DIR": str(MODELS),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "POWERTOOLS_SERVICE_NAME": "kettle",
        "POWERTOOLS_METRICS_NAMESPACE": "kettle",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def install_lambda_provided() -> Path:
    """boto3 & co. (pure Python), standing in for what the Lambda image puts on sys.path."""
    target = REPO / ".cache" / "lambda-python-provided"
    if not (target / ".complete").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
            + ["--disable-pip-version-check", "--target", str(target), *LAMBDA_PROVIDED],
            check=True,
        )
        (target / ".complete").write_text("\n".join(LAMBDA_PROVIDED))
    return target


def parse_child(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
