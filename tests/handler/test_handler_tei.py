"""TEI's request fields and routes (issue 12, handler half): dimensions, prompt_name and
truncation_direction on /embed, /embed_sparse and /rerank; /similarity and /decode."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["The kettle is boiling.", "Tea is ready in the pot.", "Quarterly revenue grew by 4%."]


def test_embed_dimensions_cuts_and_renormalizes(call_api, dense_model):
    full = np.stack(list(dense_model.embed(TEXTS)))
    got = np.asarray(call_api("POST", "/embed", {"inputs": TEXTS, "dimensions": 32}).json())
    want = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-7)
    raw = call_api("POST", "/embed", {"inputs": TEXTS, "dimensions": 32, "normalize": False})
    raw_full = np.stack(list(dense_model.embed(TEXTS, normalize=False)))
    np.testing.assert_allclose(np.asarray(raw.json()), raw_full[:, :32], atol=1e-6)
    too_many = call_api("POST", "/embed", {"inputs": "a", "dimensions": 1000})
    assert too_many.status == 422 and too_many.json()["error"]["param"] == "dimensions"


def test_prompt_name_is_kind(call_api, dense_model):
    by_kind = call_api("POST", "/embed", {"inputs": TEXTS, "kind": "query"}).json()
    by_prompt = call_api("POST", "/embed", {"inputs": TEXTS, "prompt_name": "query"}).json()
    assert by_kind == by_prompt
    both = call_api("POST", "/embed", {"inputs": "a", "kind": "query", "prompt_name": "passage"})
    assert both.status == 422 and both.json()["error"]["param"] == "prompt_name"
    unknown = call_api("POST", "/embed", {"inputs": "a", "prompt_name": "summary"})
    assert unknown.status == 422 and unknown.json()["error"]["param"] == "prompt_name"


@pytest.mark.parametrize("path", ["/embed", "/rerank", "/embed_sparse"])
def test_truncation_direction_left_is_refused_by_name(call_api, path):
    body = {"query": "q", "texts": ["a"]} if path == "/rerank" else {"inputs": ["a"]}
    left = call_api("POST", path, {**body, "truncation_direction": "Left"})
    assert left.status == 422, left
    error = left.json()["error"]
    assert error["param"] == "truncation_direction" and "right" in error["message"]


def test_truncation_direction_right_and_left_without_truncation(call_api, dense_model):
    want = np.stack(list(dense_model.embed(TEXTS)))
    right = call_api("POST", "/embed", {"inputs": TEXTS, "truncation_direction": "Right"})
    np.testing.assert_allclose(np.asarray(right.json()), want, atol=1e-7)
    body = {"inputs": TEXTS, "truncation_direction": "Left", "truncate": False}
    assert call_api("POST", "/embed", body).status == 200  # nothing is cut, so no side matters


def test_similarity_is_the_cosine_of_kettles_vectors(call_api, dense_model):
    source, sentences = "How do I boil water?", TEXTS
    result = call_api(
        "POST", "/similarity", {"inputs": {"source_sentence": source, "sentences": sentences}}
    )
    assert result.status == 200, result
    vectors = np.stack(list(dense_model.embed([source, *sentences])))
    np.testing.assert_allclose(result.json(), vectors[1:] @ vectors[0], atol=1e-6)
    assert int(np.argmax(result.json())) == 0


def test_similarity_errors_name_the_sentence(call_api):
    long = "word " * 400
    body = {"inputs": {"source_sentence": "a", "sentences": ["b", long]}, "truncate": False}
    result = call_api("POST", "/similarity", body)
    assert result.status == 413, result
    assert result.json()["error"]["param"] == "inputs.sentences[1]"
    assert result.json()["error"]["message"].startswith("inputs.sentences[1] has 402 tokens")
    empty = call_api("POST", "/similarity", {"inputs": {"source_sentence": "a", "sentences": []}})
    assert empty.status == 422 and empty.json()["error"]["param"] == "inputs.sentences"


def test_decode_inverts_tokenize(call_api, dense_model):
    tokens = call_api("POST", "/tokenize", {"inputs": ["hello world", "tea"]}).json()
    ids = [[t["id"] for t in text] for text in tokens]
    assert call_api("POST", "/decode", {"ids": ids}).json() == ["hello world", "tea"]
    with_special = call_api("POST", "/decode", {"ids": ids[0], "skip_special_tokens": False})
    assert with_special.json() == ["[CLS] hello world [SEP]"]
    bad = call_api("POST", "/decode", {"ids": [[101, 7592], [101, 10**9]]})
    assert bad.status == 422 and bad.json()["error"]["param"] == "ids[1][1]"
    flat = call_api("POST", "/decode", {"ids": [101, -1]})
    assert flat.status == 422 and flat.json()["error"]["param"] == "ids[1]"
    text = call_api("POST", "/decode", {"ids": ["a"]})
    assert text.status == 422 and text.json()["error"]["param"].startswith("ids")
