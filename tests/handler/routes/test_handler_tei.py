"""TEI's request fields and routes (issue 12, handler half): dimensions, prompt_name and
truncation_direction on /embed, /embed_sparse and /rerank; /similarity, /decode, /embed_all and
/predict."""

from __future__ import annotations

import os

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
    assert too_many.status == 422 and too_many.error["param"] == "dimensions"


def test_prompt_name_is_kind(call_api, dense_model):
    by_kind = call_api("POST", "/embed", {"inputs": TEXTS, "kind": "query"}).json()
    by_prompt = call_api("POST", "/embed", {"inputs": TEXTS, "prompt_name": "query"}).json()
    assert by_kind == by_prompt
    both = call_api("POST", "/embed", {"inputs": "a", "kind": "query", "prompt_name": "passage"})
    assert both.status == 422 and both.error["param"] == "prompt_name"
    unknown = call_api("POST", "/embed", {"inputs": "a", "prompt_name": "summary"})
    assert unknown.status == 422 and unknown.error["param"] == "prompt_name"


LONG = " ".join(["tea", "kettle", "water", "boil", "steam"][i % 5] for i in range(330))


def test_truncation_direction_left_keeps_the_end_on_every_dense_route(call_api, dense_model):
    left = dense_model.embed_with_usage([LONG], truncation_direction="left").vectors
    right = dense_model.embed_with_usage([LONG]).vectors
    assert float(left[0] @ right[0]) < 0.9999  # the two ends of the text read differently
    body = {"inputs": [LONG], "truncation_direction": "Left"}
    np.testing.assert_allclose(call_api("POST", "/embed", body).json(), left, atol=1e-7)
    tokens = call_api("POST", "/embed_all", body).json()
    [want] = dense_model.embed_tokens_with_usage([LONG], truncation_direction="left").vectors
    np.testing.assert_allclose(tokens[0], want, atol=1e-6)
    similarity = call_api(
        "POST",
        "/similarity",
        {"inputs": {"source_sentence": "tea", "sentences": [LONG]}, "truncation_direction": "Left"},
    )
    [tea] = dense_model.embed_with_usage(["tea"]).vectors
    np.testing.assert_allclose(similarity.json(), [float(left[0] @ tea)], atol=1e-6)
    lower = call_api("POST", "/embed", {"inputs": [LONG], "truncation_direction": "left"})
    assert lower.json() == call_api("POST", "/embed", body).json()


def test_truncation_direction_left_on_the_sparse_route(call_api, monkeypatch, sparse_baked):
    from kettle.sparse import SparseTextEmbedding

    monkeypatch.setenv("KETTLE_SPARSE_MODEL", sparse_baked)
    model = SparseTextEmbedding(sparse_baked, models_dir=os.environ["KETTLE_MODELS_DIR"])
    [want] = model.embed_with_usage([LONG], truncation_direction="left").vectors
    result = call_api("POST", "/embed_sparse", {"inputs": LONG, "truncation_direction": "Left"})
    assert result.status == 200, result
    assert [item["index"] for item in result.json()[0]] == want.indices.tolist()


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
    assert result.error["param"] == "inputs.sentences[1]"
    assert result.error["message"].startswith("inputs.sentences[1] has 402 tokens")
    empty = call_api("POST", "/similarity", {"inputs": {"source_sentence": "a", "sentences": []}})
    assert empty.status == 422 and empty.error["param"] == "inputs.sentences"


def test_decode_inverts_tokenize(call_api, dense_model):
    tokens = call_api("POST", "/tokenize", {"inputs": ["hello world", "tea"]}).json()
    ids = [[t["id"] for t in text] for text in tokens]
    assert call_api("POST", "/decode", {"ids": ids}).json() == ["hello world", "tea"]
    with_special = call_api("POST", "/decode", {"ids": ids[0], "skip_special_tokens": False})
    assert with_special.json() == ["[CLS] hello world [SEP]"]
    bad = call_api("POST", "/decode", {"ids": [[101, 7592], [101, 10**9]]})
    assert bad.status == 422 and bad.error["param"] == "ids[1][1]"
    flat = call_api("POST", "/decode", {"ids": [101, -1]})
    assert flat.status == 422 and flat.error["param"] == "ids[1]"
    text = call_api("POST", "/decode", {"ids": ["a"]})
    assert text.status == 422 and text.error["param"].startswith("ids")


# ---- /embed_all: token vectors, no pooling ------------------------------------------------------
def test_embed_all_is_kettles_token_vectors_and_pools_to_embed(call_api, dense_model):
    result = call_api("POST", "/embed_all", {"inputs": TEXTS})
    assert result.status == 200, result
    got = [np.asarray(m) for m in result.json()]
    counts = dense_model.token_counts(TEXTS)
    assert [m.shape for m in got] == [(n, dense_model.embedding_size) for n in counts]
    want = list(dense_model.embed_tokens(TEXTS))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)
    # all-MiniLM-L6-v2 mean-pools: the mean of the tokens is /embed's raw vector
    raw = np.stack(list(dense_model.embed(TEXTS, normalize=False)))
    np.testing.assert_allclose(np.stack([g.mean(axis=0) for g in got]), raw, atol=1e-5)
    one = call_api("POST", "/embed_all", {"inputs": "tea"}).json()
    assert len(one) == 1 and len(one[0]) == 3  # [CLS] tea [SEP]


def test_embed_all_prompt_and_bad_input(call_api, dense_model):
    query = call_api("POST", "/embed_all", {"inputs": ["tea"], "prompt_name": "query"})
    want = next(dense_model.embed_tokens(["tea"], kind="query"))
    np.testing.assert_allclose(np.asarray(query.json()[0]), want, atol=1e-6)
    bad = call_api("POST", "/embed_all", {"inputs": ["ok", 3]})
    assert bad.status == 422 and bad.error["param"] == "inputs[1]"
    long = call_api("POST", "/embed_all", {"inputs": ["a", "word " * 400], "truncate": False})
    assert long.status == 413 and long.error["param"] == "inputs[1]"
    side = call_api("POST", "/embed_all", {"inputs": "a", "truncation_direction": "Middle"})
    assert side.status == 422 and side.error["param"] == "truncation_direction"
    unknown = call_api("POST", "/embed_all", {"inputs": "a", "prompt_name": "summary"})
    assert unknown.status == 422 and unknown.error["param"] == "prompt_name"


def test_embed_all_past_the_response_limit_is_a_413_before_the_body_is_built(call_api, monkeypatch):
    """160 texts of 256 tokens are 15.7 million numbers (a 179 MB body): refused from the token
    counts, before the model runs and never written out first."""
    from handler.models import MODELS
    from handler.routes import text
    from handler.settings import Settings

    def refuse(*args, **kwargs):
        raise AssertionError("the token vectors were being computed or written out")

    monkeypatch.setattr(text, "json_floats", refuse)
    monkeypatch.setattr(MODELS.get("dense", Settings.from_env()), "embed_tokens_with_usage", refuse)
    result = call_api("POST", "/embed_all", {"inputs": ["tea " * 300] * 160})
    assert result.status == 413, result
    error = result.error  # TEI's error body on TEI's route
    assert error["type"] == "Validation" and "40960 token vectors" in error["message"]


def test_tokenize_reads_only_what_max_length_keeps(call_api, dense_model, monkeypatch):
    """A 2 MB text: the tokens of the whole text, from a cut of it (the tokenizer never reads
    the rest)."""
    from handler.models import MODELS
    from handler.settings import Settings

    text = "The kettle boils; tea steeps for three minutes. " * 44_000
    whole = dense_model.tokenizer.tokenizer.encode(text)
    model = MODELS.get("dense", Settings.from_env())
    seen: list[int] = []
    real = model.tokenizer._tok

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def encode_batch(self, items, *args, **kwargs):
            seen.extend(len(t) for t in items)
            return real.encode_batch(items, *args, **kwargs)

    monkeypatch.setattr(model.tokenizer, "_tok", Recording())
    result = call_api("POST", "/tokenize", {"inputs": [text]})
    assert result.status == 200, result
    [tokens] = result.json()
    assert [t["id"] for t in tokens] == whole.ids and len(tokens) == dense_model.max_length
    assert [(t["start"], t["stop"]) for t in tokens] == whole.offsets
    assert seen and max(seen) <= model.tokenizer.max_chars < len(text)


# ---- /predict: the cross-encoder as TEI's sequence-pair classifier ------------------------------
@pytest.fixture
def reranker(monkeypatch, rerank_model):
    from kettle.rerank import TextCrossEncoder

    models, name = rerank_model
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(models))
    monkeypatch.setenv("KETTLE_RERANK_MODEL", name)
    return TextCrossEncoder(name, models_dir=models)


PAIRS = [["how do I boil water?", "a kettle boils water"], ["how do I boil water?", "cats sleep"]]


def test_predict_scores_pairs_as_tei_does(call_api, reranker):
    batch = call_api("POST", "/predict", {"inputs": PAIRS})
    assert batch.status == 200, batch
    want = reranker.rerank_pairs([tuple(p) for p in PAIRS], sigmoid=True)
    got = batch.json()
    assert [len(g) for g in got] == [1, 1]  # a list of predictions per input (one label here)
    assert all(g[0]["label"] == "LABEL_0" for g in got)
    np.testing.assert_allclose([g[0]["score"] for g in got], want, atol=1e-6)
    single = call_api("POST", "/predict", {"inputs": PAIRS[0]}).json()
    assert single == [got[0][0]]  # one pair: TEI's single answer, not wrapped in a batch
    raw = call_api("POST", "/predict", {"inputs": PAIRS, "raw_scores": True}).json()
    logits = reranker.rerank_pairs([tuple(p) for p in PAIRS])
    np.testing.assert_allclose([r[0]["score"] for r in raw], logits, atol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "param", "words"),
    [
        ("just one text", "inputs", "scores pairs"),
        (["q", "a", "b"], "inputs", "3 items"),
        ([["q", "a"], ["only one"]], "inputs[1]", "scores pairs"),
        ([["q", "a"], "q"], "inputs[1]", "a batch holds lists"),
        ([["q", "a"], ["q", 3]], "inputs[1][1]", "not a string"),
        ([["q", "a"], ["", "b"]], "inputs[1][0]", "empty string"),
        (["q", "a\ud800"], "inputs[1]", "lone surrogate"),
        ([], "inputs", "empty list"),
        ({"q": "a"}, "inputs", "not an object"),
    ],
)
def test_predict_bad_inputs_name_the_item(call_api, reranker, inputs, param, words):
    result = call_api("POST", "/predict", {"inputs": inputs})
    assert result.status == 422, result
    error = result.error
    assert error["param"] == param, error
    assert (
        words in error["message"]
        or words.replace("not an object", "an object") in (error["message"])
    ), error


def test_predict_limits(call_api, reranker):
    long = call_api(
        "POST", "/predict", {"inputs": [PAIRS[0], ["q", "word " * 200]], "truncate": False}
    )
    assert long.status == 413 and long.error["param"] == "inputs[1]"
    assert call_api("POST", "/predict", {"inputs": [["q", "word " * 200]]}).status == 200  # cut


def test_rerank_truncate_false_names_the_long_text(call_api, reranker):
    body = {"query": "q", "texts": ["a", "word " * 200], "truncate": False}
    long = call_api("POST", "/rerank", body)
    error = long.error
    assert long.status == 413 and error["param"] == "texts[1]", error
    assert error["message"].startswith("query + texts[1] is "), error
    assert call_api("POST", "/rerank", body | {"truncate": True}).status == 200


def test_rerank_and_predict_take_truncation_direction_left(call_api, reranker):
    pair = ("q", "first words " + "tea " * 200 + "last words")
    left = reranker.rerank_pairs([pair], sigmoid=True, truncation_direction="left")
    right = reranker.rerank_pairs([pair], sigmoid=True)
    assert left != right
    body = {"truncation_direction": "Left"}
    ranked = call_api("POST", "/rerank", {"query": pair[0], "texts": [pair[1]], **body})
    assert ranked.status == 200, ranked
    np.testing.assert_allclose(ranked.json()[0]["score"], left[0], atol=1e-6)
    predicted = call_api("POST", "/predict", {"inputs": list(pair), **body}).json()
    np.testing.assert_allclose(predicted[0]["score"], left[0], atol=1e-6)


def test_predict_without_a_reranker_is_501(call_api):
    result = call_api("POST", "/predict", {"inputs": ["q", "a"]})
    assert result.status == 501 and "KETTLE_RERANK_MODEL" in result.error["message"]


def test_openapi_documents_embed_all_and_predict(call_api):
    spec = call_api("GET", "/openapi.json").json()
    for path in ("/embed_all", "/predict"):
        assert {"200", "422"} <= set(spec["paths"][path]["post"]["responses"]), path
    inputs = spec["components"]["schemas"]["PredictRequest"]["properties"]["inputs"]
    assert len(inputs["anyOf"]) == 3 and inputs["anyOf"][1]["maxItems"] == 2


# ---- /info: TEI's Info for the dense model -------------------------------------------------------
def test_info_answers_teis_fields_for_the_dense_model(call_api, dense_model, monkeypatch):
    import kettle

    monkeypatch.setenv("MAX_TEXTS", "77")
    result = call_api("GET", "/info")
    assert result.status == 200, result
    info = result.json()
    manifest = dense_model.manifest
    assert info["model_id"] == info["served_model_name"] == dense_model.model_name
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    weight_type = (manifest.quantization or {}).get("weight_type")
    assert info["model_dtype"] == {"QInt8": "int8", "QUInt8": "uint8"}.get(weight_type, "float32")
    assert info["model_sha"] is None  # baked from a PyPI package, not a Hub revision
    assert info["max_input_length"] == dense_model.max_length == 256
    assert info["max_batch_tokens"] == dense_model.token_budget
    assert info["max_client_batch_size"] == 77
    assert info["max_concurrent_requests"] == 1 and info["auto_truncate"] is True
    assert info["tokenization_workers"] >= 1 and info["version"] == kettle.__version__
    teis = {
        "model_id", "model_sha", "model_dtype", "model_type", "max_concurrent_requests",
        "max_input_length", "max_batch_tokens", "max_batch_requests", "max_client_batch_size",
        "auto_truncate", "tokenization_workers", "version", "sha", "docker_label",
    }  # fmt: skip
    assert teis <= set(info)


def test_info_without_its_model_is_teis_unhealthy(call_api, monkeypatch):
    monkeypatch.setenv("KETTLE_MODEL", "kettle-tests/not-baked-anywhere")
    result = call_api("GET", "/info")
    assert result.status == 503 and result.json()["error_type"] == "Unhealthy", result
