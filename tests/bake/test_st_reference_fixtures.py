"""The sentence-transformers reference fixtures are what the fidelity checks assume they are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.st_reference import FIXTURES, NAMES, load

REPO = FIXTURES.parents[1]


def _gate_strings() -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            found.add(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in ("eval_texts.json", "eval_retrieval.json"):
        walk(json.loads((REPO / "models_bake" / name).read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("model", sorted(NAMES))
def test_reference_is_held_out_and_well_formed(model):
    texts, vectors, meta = load(model)
    assert meta["model"] == model
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), meta["dim"])
    assert len(texts) >= 128 and len(set(texts)) == len(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # held out: the bake's gate must not have tuned on the texts the tests measure with
    assert not set(texts) & _gate_strings()
    # long texts exercise truncation at the model's own max_seq_length
    counts = meta["token_counts"]
    assert sum(c > meta["max_seq_length"] for c in counts) >= 16
    assert min(counts) <= 8
