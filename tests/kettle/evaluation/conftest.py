"""A small BEIR folder, fp32 bakes of MiniLM and SPLADE-tiny, and the random cross-encoder
fixtures (tests/kettle/rerank/_rerank_model.py) for --rerank."""

import pytest

from kettle.registry import DEFAULT_SPARSE_MODEL
from models_bake.bake import bake
from models_bake.verify import retrieval_set
from tests.conftest import MINILM, REPO
from tests.kettle.evaluation._beir import write_beir
from tests.kettle.rerank._rerank_model import (  # noqa: F401 (pytest finds fixtures by name)
    cross_encoder_checkpoint,
    cross_encoder_name,
    rerank_fp32_dir,
)


@pytest.fixture(scope="session")
def beir_folder(tmp_path_factory):
    """24 numpy docstring pairs with graded qrels, and a passage sharing a query's id and text
    (BEIR leaves it out of that query's ranking)."""
    pairs = retrieval_set()["pairs"][:24]
    corpus = [
        {"_id": p["id"], "title": p["id"].rsplit(".", 1)[-1], "text": p["document"]} for p in pairs
    ]
    corpus.append({"_id": "q-0", "title": "", "text": pairs[0]["query"]})
    queries = [{"_id": f"q-{i}", "text": p["query"]} for i, p in enumerate(pairs)]
    qrels = [(f"q-{i}", p["id"], 2) for i, p in enumerate(pairs)]
    qrels += [(f"q-{i}", pairs[(i + 1) % len(pairs)]["id"], 1) for i in range(0, len(pairs), 3)]
    qrels += [("q-5", pairs[9]["id"], 0)]
    return write_beir(tmp_path_factory.mktemp("beir"), corpus, queries, qrels)


@pytest.fixture(scope="session")
def fp32_minilm(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm-fp32")
    return bake(MINILM, out=out, quantize="none", cache=REPO / ".cache").path


@pytest.fixture(scope="session")
def fp32_splade(tmp_path_factory):
    out = tmp_path_factory.mktemp("splade-fp32")
    return bake(DEFAULT_SPARSE_MODEL, out=out, quantize="none", cache=REPO / ".cache").path
