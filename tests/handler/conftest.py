"""Fixtures for the handler tests: the baked models, a clean handler environment, API events of
both payload versions, and a moto sandbox with the buckets and queue the handler uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _handler_helpers import (
    COLBERT,
    DENSE,
    IMAGE_MODEL,
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
        "KETTLE_IMAGE_MODEL",
        "KETTLE_LATE_INTERACTION_MODEL",
        "IMAGE_BUCKETS",
        "MAX_IMAGE_BYTES",
        "MAX_IMAGE_PIXELS",
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
        "_handler_convert_ref", REPO / "tests" / "bake" / "convert" / "_convert_ref.py"
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


# ---- a tiny image encoder and a tiny ColBERT ---------------------------------------------------
def _load_module(name: str, path: Path):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _link_tree(source: Path, target: Path) -> None:
    """``source``'s directories made anew under ``target``, its files symlinked: kettle's
    list_baked globs ``**/manifest.json``, which does not descend into symlinked directories."""
    target.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        if path.is_dir():
            (target / path.relative_to(source)).mkdir(parents=True, exist_ok=True)
        else:
            (target / path.relative_to(source)).symlink_to(path)


@pytest.fixture(scope="session")
def image_helpers():
    """tests/kettle/image/_image_model.py: the tiny ONNX image encoder, its configs, test images."""
    return _load_module(
        "_handler_image_model", REPO / "tests" / "kettle" / "image" / "_image_model.py"
    )


@pytest.fixture(scope="session")
def extra_models(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, image_helpers):
    """A models dir with the tiny image encoder of tests/kettle/image (CLIP-like preprocessing) and the
    tiny random ColBERT of tests/kettle/late_interaction, both baked fp32 through models_bake from local
    sources, beside links to the repository's baked dense and sparse models. Yields the dir."""
    import sys

    from kettle.registry import register_model, unregister_model
    from models_bake.bake import bake

    convert = str(REPO / "tests" / "bake" / "convert")
    if convert not in sys.path:  # _colbert_tiny imports _convert_ref (random BERT)
        sys.path.insert(0, convert)
    colbert = _load_module(
        "_handler_colbert_tiny", REPO / "tests" / "kettle" / "late_interaction" / "_colbert_tiny.py"
    )
    image_src = image_helpers.write_model_dir(
        tmp_path_factory.mktemp("image-src"), image_helpers.CLIP_LIKE
    )
    colbert_src = tmp_path_factory.mktemp("colbert-src")
    colbert.write_checkpoint(colbert_src)
    descriptions = [
        image_helpers.description(
            IMAGE_MODEL, image_src, "tiny image encoder, for the handler tests"
        ),
        colbert.description(COLBERT, colbert_src, "random ColBERT, for the handler tests"),
    ]
    out = tmp_path_factory.mktemp("extra-models")
    cache = tmp_path_factory.mktemp("extra-models-cache")
    try:
        for description in descriptions:
            register_model(description)
            bake(description.name, out=out, quantize="none", cache=cache)
        for name in (DENSE, SPARSE):
            _link_tree(models_dir / name, out / name)
        yield out
    finally:
        for description in descriptions:
            unregister_model(description.name)


@pytest.fixture
def with_image_model(monkeypatch: pytest.MonkeyPatch, extra_models: Path) -> str:
    """The handler environment with KETTLE_IMAGE_MODEL set; the model's name."""
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(extra_models))
    monkeypatch.setenv("KETTLE_IMAGE_MODEL", IMAGE_MODEL)
    return IMAGE_MODEL


@pytest.fixture
def with_colbert(monkeypatch: pytest.MonkeyPatch, extra_models: Path) -> str:
    """The handler environment with KETTLE_LATE_INTERACTION_MODEL set; the model's name."""
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(extra_models))
    monkeypatch.setenv("KETTLE_LATE_INTERACTION_MODEL", COLBERT)
    return COLBERT


@pytest.fixture(scope="session")
def kettle_image(extra_models: Path):
    """kettle's own ImageEmbedding of the tiny encoder: what the handler's answers must equal."""
    from kettle.image import ImageEmbedding

    return ImageEmbedding(IMAGE_MODEL, models_dir=extra_models)


@pytest.fixture(scope="session")
def kettle_colbert(extra_models: Path):
    """kettle's own LateInteractionTextEmbedding of the tiny ColBERT."""
    from kettle.late_interaction import LateInteractionTextEmbedding

    return LateInteractionTextEmbedding(COLBERT, models_dir=extra_models)
