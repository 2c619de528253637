"""Fixtures for the handler tests: the baked models, a clean handler environment, API events of
both payload versions, and a moto sandbox with the buckets and queue the handler uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _handler_helpers import (
    DENSE,
    INPUT_BUCKET,
    INPUT_PREFIX,
    MODELS,
    OUTPUT_BUCKET,
    OUTPUT_PREFIX,
    REPO,
    SPARSE,
    ApiResult,
    api_event,
    lambda_context,
)

# Set before handler modules are imported (Powertools reads some of these at import).
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "kettle")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "kettle")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _require(name: str) -> Path:
    path = MODELS / name
    if not (path / "manifest.json").is_file():
        pytest.fail(
            f"{path} is not baked: run `make models` (or .venv/bin/python -m models_bake {name} "
            "--out models) first"
        )
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """<repo>/models with the default dense model baked; fails (never skips) without it."""
    _require(DENSE)
    return MODELS


@pytest.fixture(scope="session")
def sparse_baked(models_dir: Path) -> str:
    _require(SPARSE)
    return SPARSE


@pytest.fixture(scope="session")
def dense_model(models_dir: Path):
    """kettle's own TextEmbedding of the default model: what the handler's answers must equal."""
    from kettle import TextEmbedding

    return TextEmbedding(DENSE, models_dir=models_dir)


@pytest.fixture(autouse=True)
def handler_env(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    """The environment template.yaml gives the functions, pointed at the test buckets."""
    for name in (
        "KETTLE_SPARSE_MODEL",
        "KETTLE_RERANK_MODEL",
        "KETTLE_THREADS",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "MAX_TEXTS",
        "MAX_REQUEST_BYTES",
        "MAX_OBJECT_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("KETTLE_MODEL", DENSE)
    monkeypatch.setenv("KETTLE_THREADS", "1")
    monkeypatch.setenv("INPUT_PREFIX", INPUT_PREFIX)
    monkeypatch.setenv("OUTPUT_PREFIX", OUTPUT_PREFIX)
    monkeypatch.setenv("OUTPUT_BUCKET", OUTPUT_BUCKET)
    monkeypatch.setenv("CHUNK_TOKENS", "256")
    monkeypatch.setenv("CHUNK_OVERLAP", "32")
    monkeypatch.setenv("DLQ_URL", "")


@pytest.fixture
def call_api():
    """call_api(method, path, body, version=2|1, ...) -> ApiResult through api_handler."""
    from handler.app import api_handler

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> ApiResult:
        return ApiResult(api_handler(api_event(method, path, body, **kwargs), lambda_context()))

    return call


# ---- moto ---------------------------------------------------------------------------------------
@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A moto sandbox with the input and output buckets and the dead-letter queue."""
    import boto3
    from moto import mock_aws

    from handler import clients

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clients.reset()
        s3 = boto3.client("s3")
        sqs = boto3.client("sqs")
        s3.create_bucket(Bucket=INPUT_BUCKET)
        s3.create_bucket(Bucket=OUTPUT_BUCKET)
        dlq = sqs.create_queue(QueueName="kettle-dlq")["QueueUrl"]
        monkeypatch.setenv("DLQ_URL", dlq)
        yield {"s3": s3, "sqs": sqs, "dlq": dlq}
        clients.reset()


# ---- a small reranker ---------------------------------------------------------------------------
RERANKER = "kettle-tests/handler-cross-encoder"


@pytest.fixture(scope="session")
def rerank_model(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    """(models dir, name): a random BertForSequenceClassification with MiniLM's tokenizer, baked
    fp32 beside links to the repository's baked models (the registry's reranker needs the Hub)."""
    import importlib.util
    import shutil
    from unittest import mock

    from kettle.registry import ModelDescription, Source, register_model, unregister_model
    from models_bake.bake import bake

    spec = importlib.util.spec_from_file_location(
        "_handler_convert_ref", REPO / "tests" / "convert" / "_convert_ref.py"
    )
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    with mock.patch.multiple(ref, VOCAB=30522, MAX_POS=128):
        cfg = ref.make_config("BertForSequenceClassification", num_labels=1)
        weights = ref.make_state_dict("BertForSequenceClassification", seed=11, num_labels=1)
    source = ref.write_checkpoint(tmp_path_factory.mktemp("reranker-src"), cfg, weights)
    shutil.copyfile(models_dir / DENSE / "tokenizer.json", source / "tokenizer.json")
    register_model(
        ModelDescription(
            name=RERANKER,
            kind="rerank",
            dim=1,
            pooling="none",
            normalize=False,
            max_length=96,
            sources=(Source("local", str(source)),),
            license="apache-2.0",
            description="random weights, for the handler tests",
        )
    )
    out = tmp_path_factory.mktemp("rerank-models")
    try:
        bake(RERANKER, out=out, quantize="none", cache=REPO / ".cache")
        (out / DENSE.split("/")[0]).symlink_to(models_dir / DENSE.split("/")[0])
        yield out, RERANKER
    finally:
        unregister_model(RERANKER)
