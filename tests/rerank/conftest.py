"""A small random BertForSequenceClassification (vocab 30522, hidden 32) that the tests write,
register and bake themselves (fp32 and int8), with MiniLM's tokenizer from the `make models`
cache. The weights and the numpy reference forward come from tests/convert/_convert_ref.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from unittest import mock

import pytest
from _rerank_model import MAX_LENGTH, NAME, TOKENIZER, VOCAB, convert_ref

from kettle.registry import ModelDescription, Source, register_model, unregister_model
from models_bake.bake import bake
from tests.conftest import REPO


@pytest.fixture(scope="session")
def cross_encoder_checkpoint(tmp_path_factory) -> tuple[Path, dict, dict]:
    """(folder, config, state dict) of the random cross-encoder."""
    if not TOKENIZER.is_file():
        pytest.fail(f"{TOKENIZER} is missing: run `make models` first")
    ref = convert_ref()
    with mock.patch.multiple(ref, VOCAB=VOCAB, MAX_POS=128):
        cfg = ref.make_config("BertForSequenceClassification", num_labels=1)
        sd = ref.make_state_dict("BertForSequenceClassification", seed=7, num_labels=1)
    folder = ref.write_checkpoint(tmp_path_factory.mktemp("cross-encoder-src"), cfg, sd)
    shutil.copyfile(TOKENIZER, folder / "tokenizer.json")
    return folder, cfg, sd


@pytest.fixture(scope="session")
def cross_encoder_name(cross_encoder_checkpoint):
    folder = cross_encoder_checkpoint[0]
    register_model(
        ModelDescription(
            name=NAME,
            kind="rerank",
            dim=1,
            pooling="none",
            normalize=False,
            max_length=MAX_LENGTH,
            sources=(Source("local", str(folder)),),
            license="apache-2.0",
            description="random weights, for tests",
        )
    )
    yield NAME
    unregister_model(NAME)


@pytest.fixture(scope="session")
def rerank_fp32_dir(tmp_path_factory, cross_encoder_name) -> Path:
    out = tmp_path_factory.mktemp("rerank-fp32")
    bake(cross_encoder_name, out=out, quantize="none", cache=REPO / ".cache")
    return out


@pytest.fixture(scope="session")
def rerank_int8_dir(tmp_path_factory, cross_encoder_name) -> Path:
    out = tmp_path_factory.mktemp("rerank-int8")
    bake(cross_encoder_name, out=out, quantize="int8", cache=REPO / ".cache")  # gate 0.99
    return out
