"""The HTTP API through api_handler: every route, both API Gateway payload versions, every class
of bad request (status + a body naming the field and item), and a 500 that shows no trace."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from _handler_helpers import DENSE, SPARSE

VERSIONS = [pytest.param(2, id="http-api-v2"), pytest.param(1, id="rest-api-v1")]
TEXTS = ["The kettle is boiling.", "Tea is ready in the pot.", "Quarterly revenue grew by 4%."]


def vectors_of(result) -> np.ndarray:
    assert result.status == 200, result
    return np.asarray(result.json(), dtype=np.float32)


# ---- /embed --------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_embed_returns_kettles_vectors_in_order(call_api, dense_model, version):
    got = vectors_of(call_api("POST", "/embed", {"inputs": TEXTS}, version=version))
    want = np.stack(list(dense_model.embed(TEXTS)))
    assert got.shape == (3, dense_model.embedding_size)
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_embed_takes_a_single_string(call_api, dense_model):
    got = vectors_of(call_api("POST", "/embed", {"inputs": TEXTS[0]}))
    np.testing.assert_allclose(got, np.stack(list(dense_model.embed(TEXTS[:1]))), atol=1e-7)


def test_embed_normalize_false_keeps_the_pooled_length(call_api, dense_model):
    raw = vectors_of(call_api("POST", "/embed", {"inputs": TEXTS, "normalize": False}))
    unit = np.stack(list(dense_model.embed(TEXTS)))
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / norms[:, None], unit, atol=1e-6)


def test_embed_kind_applies_the_models_prefix(call_api, dense_model, monkeypatch):
    import dataclasses

    from kettle.dense import TextEmbedding

    def manifest(self):  # MiniLM has no query prefix: give it one
        return dataclasses.replace(self.baked.manifest, query_prefix="query: ")

    monkeypatch.setattr(TextEmbedding, "manifest", property(manifest))
    got = vectors_of(call_api("POST", "/embed", {"inputs": "boiling", "kind": "query"}))
    prefixed = np.stack(list(dense_model.embed(["query: boiling"])))
    plain = np.stack(list(dense_model.embed(["boiling"])))
    np.testing.assert_allclose(got, prefixed, atol=1e-7)
    assert not np.allclose(got, plain, atol=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
def test_embed_truncate_false_names_the_text_that_is_too_long(call_api, version):
    long_text = "word " * 400  # MiniLM takes 256 tokens
    result = call_api(
        "POST", "/embed", {"inputs": ["short", long_text], "truncate": False}, version=version
    )
    assert result.status == 413, result
    error = result.error
    assert error["param"] == "inputs[1]"
    assert "inputs[1] has 402 tokens" in error["message"] and "256" in error["message"]
    assert call_api("POST", "/embed", {"inputs": ["short", long_text]}).status == 200


# ---- bad requests, both payload versions ---------------------------------------------------------
BAD_REQUESTS = [
    # (id, request kwargs, status, error param, words the message must contain)
    ("malformed-json", {"raw": '{"inputs": ["a",'}, 400, "body", "not valid JSON"),
    ("no-body", {}, 422, "body", "body is missing"),
    ("body-not-object", {"body": ["a", "b"]}, 400, "body", "must be a JSON object, not a list"),
    ("empty-list", {"body": {"inputs": []}}, 422, "inputs", "inputs is an empty list"),
    ("empty-string", {"body": {"inputs": ""}}, 422, "inputs", "inputs is an empty string"),
    (
        "empty-item",
        {"body": {"inputs": ["a", "b", ""]}},
        422,
        "inputs[2]",
        "inputs[2] is an empty string",
    ),
    ("number-item", {"body": {"inputs": ["a", 7]}}, 422, "inputs[1]", "inputs[1] is a number"),
    ("null-item", {"body": {"inputs": [None]}}, 422, "inputs[0]", "inputs[0] is null"),
    ("inputs-object", {"body": {"inputs": {"a": 1}}}, 422, "inputs", "not an object"),
    ("missing-field", {"body": {"normalize": True}}, 422, "inputs", "inputs is required"),
    ("unknown-field", {"body": {"inputs": "a", "top_k": 3}}, 422, "top_k", "not a field"),
    (
        "bool-as-string",
        {"body": {"inputs": "a", "normalize": "yes"}},
        422,
        "normalize",
        "normalize",
    ),
    ("bad-kind", {"body": {"inputs": "a", "kind": "document"}}, 422, "kind", "kind"),
    ("bad-base64", {"encoded_body": "not base64 at all!"}, 400, "body", "base64"),
    ("non-utf8", {"raw": b"\xff\xfe{}", "base64_body": True}, 400, "body", "UTF-8"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("kwargs", "status", "param", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_requests_name_the_field_and_item(call_api, version, kwargs, status, param, words):
    result = call_api("POST", "/embed", version=version, **kwargs)
    assert result.status == status, result
    assert result.headers["content-type"].startswith("application/json")
    error = result.error
    assert error["param"] == param, result
    assert words in error["message"], result
    assert result.json()["request_id"]


@pytest.mark.parametrize("version", VERSIONS)
def test_base64_encoded_body_is_decoded(call_api, dense_model, version):
    result = call_api("POST", "/embed", {"inputs": TEXTS}, version=version, base64_body=True)
    np.testing.assert_allclose(
        vectors_of(result), np.stack(list(dense_model.embed(TEXTS))), atol=1e-7
    )


def test_json_body_sent_as_form_or_without_content_type_is_read_as_json(call_api):
    # curl -d sends application/x-www-form-urlencoded; every route takes JSON.
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert call_api("POST", "/embed", {"inputs": "a"}, headers=form).status == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_too_many_texts_is_413(call_api, monkeypatch, version):
    monkeypatch.setenv("MAX_TEXTS", "3")
    result = call_api("POST", "/embed", {"inputs": ["a", "b", "c", "d"]}, version=version)
    assert result.status == 413, result
    error = result.error
    assert error["param"] == "inputs" and "4 texts" in error["message"]
    assert "MAX_TEXTS" in error["message"]
    assert call_api("POST", "/embed", {"inputs": ["a", "b", "c"]}).status == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_too_many_bytes_is_413(call_api, monkeypatch, version):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "200")
    result = call_api("POST", "/embed", {"inputs": ["x" * 300]}, version=version)
    assert result.status == 413, result
    assert "MAX_REQUEST_BYTES" in result.error["message"]
    # The limit counts decoded bytes: the same body base64-encoded is not measured larger.
    small = {"inputs": ["x" * 120]}
    assert call_api("POST", "/embed", small, version=version, base64_body=True).status == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_route_is_a_json_404(call_api, version):
    result = call_api("GET", "/nope", version=version)
    assert result.status == 404
    assert "/nope" in result.error["message"]


@pytest.fixture
def log_lines(monkeypatch):
    """The handler's JSON log lines (the Powertools logger's stream, swapped for a buffer)."""
    from handler.observability import logger

    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_failure_inside_is_a_generic_500_and_is_logged(call_api, monkeypatch, log_lines, version):
    from kettle.dense import TextEmbedding

    def explode(self, texts, batch_size=256, **options):
        raise RuntimeError("secret detail at /var/task/model.onnx")

    monkeypatch.setattr(TextEmbedding, "embed_with_usage", explode)
    result = call_api("POST", "/embed", {"inputs": "a"}, version=version)
    assert result.status == 500, result
    body = result.json()
    assert result.error["message"] == "internal error; it has been logged"
    assert body["request_id"]
    assert "secret" not in result.text and "Traceback" not in result.text
    [error] = [line for line in log_lines() if line["level"] == "ERROR"]
    assert error["function_request_id"] == body["request_id"]
    assert "secret detail" in error["exception"] and "Traceback" in error["exception"]


# ---- /v1/embeddings ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_openai_float_and_base64(call_api, dense_model, version):
    want = np.stack(list(dense_model.embed(TEXTS)))
    request = {"input": TEXTS, "model": DENSE}
    floats = call_api("POST", "/v1/embeddings", request, version=version)
    assert floats.status == 200, floats
    body = floats.json()
    assert body["object"] == "list" and body["model"] == DENSE
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in body["data"])
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], want, atol=1e-7)
    tokens = dense_model.token_count(TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}

    b64 = call_api("POST", "/v1/embeddings", {**request, "encoding_format": "base64"})
    decoded = [
        np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64.json()["data"]
    ]
    np.testing.assert_array_equal(np.stack(decoded), want)


def test_openai_short_model_name_and_dimensions(call_api, dense_model):
    result = call_api(
        "POST", "/v1/embeddings", {"input": "tea", "model": "all-MiniLM-L6-v2", "dimensions": 64}
    )
    assert result.status == 200, result
    vector = np.asarray(result.json()["data"][0]["embedding"])
    full = next(iter(dense_model.embed(["tea"])))
    assert vector.shape == (64,)
    np.testing.assert_allclose(vector, full[:64] / np.linalg.norm(full[:64]), atol=1e-7)
    assert result.json()["model"] == DENSE


@pytest.mark.parametrize("version", VERSIONS)
def test_openai_unknown_model_lists_the_baked_ones(call_api, version):
    result = call_api(
        "POST", "/v1/embeddings", {"input": "a", "model": "text-embedding-3-small"}, version=version
    )
    assert result.status == 404, result
    error = result.error
    assert error["param"] == "model" and error["code"] == "model_not_found"
    assert "text-embedding-3-small" in error["message"] and DENSE in error["message"]


def test_openai_bad_requests(call_api):
    too_big = call_api("POST", "/v1/embeddings", {"input": "a", "model": DENSE, "dimensions": 999})
    assert too_big.status == 422 and too_big.error["param"] == "dimensions"
    tokens = call_api("POST", "/v1/embeddings", {"input": [[101, -1]], "model": DENSE})
    assert tokens.status == 422 and tokens.error["param"] == "input[0][1]", tokens
    mixed = call_api("POST", "/v1/embeddings", {"input": ["a", [101]], "model": DENSE})
    assert mixed.status == 422 and mixed.error["param"] == "input[1]", mixed
    fmt = call_api("POST", "/v1/embeddings", {"input": "a", "model": DENSE, "encoding_format": "x"})
    assert fmt.status == 422 and fmt.error["param"] == "encoding_format"
    no_model = call_api("POST", "/v1/embeddings", {"input": "a"})
    assert no_model.status == 422 and no_model.error["param"] == "model"


# ---- /embed_sparse and /rerank -------------------------------------------------------------------
def test_sparse_without_a_configured_model_is_501(call_api):
    result = call_api("POST", "/embed_sparse", {"inputs": "a"})
    assert result.status == 501, result
    assert "KETTLE_SPARSE_MODEL" in result.error["message"]


def test_sparse_returns_kettles_sparse_vectors(call_api, monkeypatch, sparse_baked, models_dir):
    from kettle.sparse import SparseTextEmbedding

    monkeypatch.setenv("KETTLE_SPARSE_MODEL", SPARSE)
    result = call_api("POST", "/embed_sparse", {"inputs": TEXTS[:2]})
    assert result.status == 200, result
    want = list(SparseTextEmbedding(SPARSE, models_dir=models_dir).embed(TEXTS[:2]))
    got = result.json()
    assert len(got) == 2  # TEI's shape: per text, a list of {"index", "value"}
    for g, w in zip(got, want, strict=True):
        assert all(set(item) == {"index", "value"} for item in g), g[:3]
        assert [item["index"] for item in g] == w.indices.tolist()
        np.testing.assert_allclose([item["value"] for item in g], w.values, atol=1e-6)
    one = call_api("POST", "/embed_sparse", {"inputs": TEXTS[0]}).json()
    assert len(one) == 1 and one[0] == got[0]


def test_rerank_without_a_configured_model_is_501(call_api):
    result = call_api("POST", "/rerank", {"query": "q", "texts": ["a"]})
    assert result.status == 501, result
    assert "KETTLE_RERANK_MODEL" in result.error["message"]


def test_rerank_orders_best_first(call_api, monkeypatch, rerank_model):
    from kettle.rerank import TextCrossEncoder

    models, name = rerank_model
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(models))
    monkeypatch.setenv("KETTLE_RERANK_MODEL", name)
    texts = ["a kettle boils water", "stock markets fell", "tea needs hot water", "cats sleep"]
    query = "how do I boil water for tea?"
    result = call_api("POST", "/rerank", {"query": query, "texts": texts, "return_text": True})
    assert result.status == 200, result
    got = result.json()
    want = TextCrossEncoder(name, models_dir=models).rank(query, texts, sigmoid=True)
    assert [g["index"] for g in got] == [w.index for w in want]
    np.testing.assert_allclose([g["score"] for g in got], [w.score for w in want], atol=1e-6)
    assert [g["text"] for g in got] == [texts[w.index] for w in want]
    scores = [g["score"] for g in got]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)

    top = call_api("POST", "/rerank", {"query": query, "texts": texts, "top_n": 2}).json()
    assert [t["index"] for t in top] == [w.index for w in want[:2]]
    assert all("text" not in t for t in top)
    bad = call_api("POST", "/rerank", {"query": query, "texts": ["a", 3]})
    assert bad.status == 422 and bad.error["param"] == "texts[1]"


# ---- /tokenize, /models, /health, docs -----------------------------------------------------------
def test_tokenize(call_api, dense_model):
    result = call_api("POST", "/tokenize", {"inputs": ["hello world", "tea"]})
    assert result.status == 200, result
    got = result.json()
    encodings = dense_model.tokenizer.encode(["hello world", "tea"])
    assert [[t["id"] for t in tokens] for tokens in got] == [e.ids for e in encodings]
    first = got[0]
    assert first[0]["special"] and first[-1]["special"] and not first[1]["special"]
    assert "hello world"[first[1]["start"] : first[1]["stop"]] == first[1]["text"]
    plain = call_api("POST", "/tokenize", {"inputs": "hello", "add_special_tokens": False}).json()
    assert [t["special"] for t in plain[0]] == [False]


def test_models_lists_the_baked_and_the_loaded(call_api, models_dir):
    from kettle.store import list_baked

    assert call_api("POST", "/embed", {"inputs": "warm up"}).status == 200
    result = call_api("GET", "/models")
    assert result.status == 200, result
    body = result.json()
    listed = {m["id"]: m for m in body["data"]}
    assert set(listed) == set(list_baked(models_dir))
    assert listed[DENSE]["loaded"] and listed[DENSE]["serves"]
    assert listed[DENSE]["kind"] == "dense" and listed[DENSE]["dim"] == 384
    assert body["configured"]["dense"] == DENSE


def test_health(call_api, monkeypatch):
    ok = call_api("GET", "/health")
    assert ok.status == 200 and ok.json()["status"] == "ok"
    monkeypatch.setenv("KETTLE_MODEL", "BAAI/bge-small-en-v1.5")
    missing = call_api("GET", "/health")
    assert missing.status == 503 and missing.json()["baked"] is False
    embed = call_api("POST", "/embed", {"inputs": "a"})
    assert embed.status == 503 and "bge-small" in embed.error["message"]


def test_openapi_and_swagger(call_api):
    spec = call_api("GET", "/openapi.json")
    assert spec.status == 200
    paths = spec.json()["paths"]
    for route in ("/embed", "/v1/embeddings", "/embed_sparse", "/rerank", "/tokenize"):
        assert "post" in paths[route], route
    assert "get" in paths["/models"] and "get" in paths["/health"]
    docs = call_api("GET", "/docs")
    assert docs.status == 200 and docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower()


def test_metrics_are_emitted(call_api, capfd):
    assert call_api("POST", "/embed", {"inputs": TEXTS}).status == 200
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if '"_aws"' in x]
    emitted = {
        m["Name"] for line in lines for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert {"Texts", "Tokens", "InferenceLatency", "RequestLatency"} <= emitted
    texts = [line["Texts"] for line in lines if "Texts" in line]
    assert texts == [[3.0]]


def test_a_response_past_lambdas_limit_is_413_not_a_lambda_error(call_api, monkeypatch):
    from handler.routes import common

    monkeypatch.setattr(common, "LAMBDA_RESPONSE_LIMIT", 20_000)  # stands in for 6 MB
    result = call_api("POST", "/embed", {"inputs": ["a"] * 8})  # ~8 x 384 numbers
    assert result.status == 413, result
    assert result.error["code"] == "response_too_large"
    b64 = call_api(
        "POST", "/v1/embeddings", {"input": ["a"] * 8, "model": DENSE, "encoding_format": "base64"}
    )
    assert b64.status == 200  # base64 is about a third of the bytes


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/embed", {"inputs": TEXTS}),
        ("/embed", {"inputs": TEXTS, "truncate": False, "kind": "query"}),
        ("/v1/embeddings", {"input": TEXTS, "model": DENSE}),
    ],
)
def test_a_request_tokenizes_its_texts_once(call_api, monkeypatch, path, body):
    """Vectors and the usage count come from one tokenization (kettle's embed_with_usage)."""
    from kettle.tokenize import TextTokenizer

    calls = []
    for name in ("encode", "count"):
        original = getattr(TextTokenizer, name)

        def counted(self, texts, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, len(list(texts))))
            return _original(self, texts, *args, **kwargs)

        monkeypatch.setattr(TextTokenizer, name, counted)
    assert call_api("POST", "/embed", {"inputs": "warm up"}).status == 200  # model loaded
    calls.clear()
    assert call_api("POST", path, body).status == 200
    assert sum(n for _, n in calls) == len(TEXTS), calls


def _st_quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray) -> np.ndarray:
    """sentence-transformers' quantize_embeddings given ``ranges``, written out here as the
    oracle (clipped at the ends, where sentence-transformers would wrap around; a dimension
    that never varies, as two of all-MiniLM-L6-v2's, which are always 0, uses [-1, 1] where
    sentence-transformers would divide by 0)."""
    if precision == "ubinary":
        return np.packbits(embeddings > 0).reshape(embeddings.shape[0], -1)
    if precision == "binary":
        return (np.packbits(embeddings > 0).reshape(embeddings.shape[0], -1) - 128).astype(np.int8)
    flat = ranges[1] <= ranges[0]
    ranges = np.vstack((np.where(flat, -1, ranges[0]), np.where(flat, 1, ranges[1])))
    ranges = ranges.astype(np.float32)
    starts, steps = ranges[0, :], (ranges[1, :] - ranges[0, :]) / np.float32(255)
    levels = np.clip((embeddings - starts) / steps, 0, 255)
    if precision == "uint8":
        return levels.astype(np.uint8)
    return (levels - 128).astype(np.int8)


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_embed_precision_quantizes_as_sentence_transformers(call_api, dense_model, precision):
    """int8/uint8 against the bake's per-dimension ranges (the manifest's calibration)."""
    ranges = np.asarray(dense_model.manifest.calibration["unit"], np.float32)
    want = _st_quantize(np.stack(list(dense_model.embed(TEXTS))), precision, ranges)
    result = call_api("POST", "/embed", {"inputs": TEXTS, "precision": precision})
    assert result.status == 200, result
    got = np.asarray(result.json())
    assert got.shape == want.shape  # binary: 384 dimensions -> 48 bytes
    np.testing.assert_array_equal(got, want)
    library = np.stack(list(dense_model.embed(TEXTS, precision=precision)))
    np.testing.assert_array_equal(got, library)  # the route is the library's call
    b64 = call_api(
        "POST",
        "/v1/embeddings",
        {"input": TEXTS, "model": DENSE, "encoding_format": "base64", "precision": precision},
    )
    dtype = np.uint8 if precision in ("uint8", "ubinary") else np.int8
    rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype) for d in b64.json()["data"]]
    np.testing.assert_array_equal(np.stack(rows), got)


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_a_text_gets_the_same_codes_in_any_request(call_api, dense_model, precision):
    """Calibrated once per model: what else a request holds never moves a text's codes."""
    alone = call_api("POST", "/embed", {"inputs": "tea", "precision": precision}).json()
    among = call_api("POST", "/embed", {"inputs": [*TEXTS, "tea"], "precision": precision}).json()
    openai = call_api(
        "POST", "/v1/embeddings", {"input": ["x", "tea"], "model": DENSE, "precision": precision}
    ).json()
    assert alone[0] == among[-1] == openai["data"][1]["embedding"]
    assert alone[0] == dense_model.encode("tea", precision=precision).tolist()
    assert len(set(map(tuple, among))) == len(among)  # and the texts do differ


def test_int8_of_a_bake_without_ranges_is_a_501(call_api, monkeypatch):
    from kettle.dense import TextEmbedding

    monkeypatch.setattr(TextEmbedding, "calibration", property(lambda self: None))
    result = call_api("POST", "/embed", {"inputs": "tea", "precision": "int8"})
    assert result.status == 501, result
    assert "precision int8" in result.json()["error"] and "re-bake" in result.json()["error"]
    openai = call_api(
        "POST", "/v1/embeddings", {"input": "tea", "model": DENSE, "precision": "int8"}
    )
    assert openai.status == 501 and openai.json()["error"]["param"] == "precision"
    assert call_api("POST", "/embed", {"inputs": "tea", "precision": "binary"}).status == 200
