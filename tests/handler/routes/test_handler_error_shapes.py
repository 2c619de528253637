"""Each route family answers errors in the shape its clients parse (handler.errors.SHAPES): TEI's
{"error", "error_type"} on TEI's routes, OpenAI's {"error": {...}} on /v1/*, kettle's own elsewhere;
the status is the one table's in all three."""

from __future__ import annotations

import pytest
from _handler_helpers import DENSE

VERSIONS = [pytest.param(2, id="http-api-v2"), pytest.param(1, id="rest-api-v1")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("path", "body", "status", "error_type", "param"),
    [
        ("/embed", {"inputs": []}, 422, "Empty", "inputs"),
        ("/embed", {"inputs": ["a", ""]}, 422, "Empty", "inputs[1]"),
        ("/embed", {"inputs": ["a", 3]}, 422, "Validation", "inputs[1]"),
        ("/embed", {"inputs": ["a", "word " * 400], "truncate": False}, 413, "Validation", None),
        ("/embed_all", {"inputs": "a", "nope": 1}, 422, "Validation", "nope"),
        ("/similarity", {"inputs": {"source_sentence": "a"}}, 422, "Validation", None),
        ("/tokenize", {"inputs": []}, 422, "Empty", "inputs"),
        ("/decode", {"ids": ["a"]}, 422, "Validation", None),
        ("/rerank", {"query": "q", "texts": ["a"]}, 501, "Backend", None),
        ("/predict", {"inputs": ["q", "a"]}, 501, "Backend", None),
        ("/embed_sparse", {"inputs": "a"}, 501, "Backend", None),
    ],
)
def test_tei_routes_answer_teis_error_body(
    call_api, version, path, body, status, error_type, param
):
    result = call_api("POST", path, body, version=version)
    assert result.status == status, result
    got = result.json()
    assert isinstance(got["error"], str) and got["error"], got
    assert got["error_type"] == error_type, got
    assert set(got) == {"error", "error_type", "code", "param", "request_id"}, got
    if param is not None:
        assert got["param"] == param and param in got["error"], got


def test_tei_errors_found_before_routing_are_teis_too(call_api, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "100")
    result = call_api("POST", "/embed", {"inputs": ["x" * 300]})
    assert result.status == 413, result
    assert result.json()["error_type"] == "Validation"
    assert "MAX_REQUEST_BYTES" in result.json()["error"]
    bad = call_api("POST", "/embed", raw='{"inputs": [')
    assert bad.status == 400 and bad.json()["error_type"] == "Validation", bad


def test_a_model_that_cannot_be_served_is_teis_unhealthy(call_api, monkeypatch):
    monkeypatch.setenv("KETTLE_MODEL", "kettle-tests/not-baked-anywhere")
    result = call_api("POST", "/embed", {"inputs": "a"})
    assert result.status == 503, result
    assert result.json()["error_type"] == "Unhealthy"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_openai_route_answers_openais_error_object(call_api, version):
    result = call_api(
        "POST", "/v1/embeddings", {"input": ["ok", ""], "model": DENSE}, version=version
    )
    assert result.status == 422, result
    got = result.json()
    assert set(got) == {"error", "request_id"}, got
    assert set(got["error"]) == {"message", "type", "param", "code"}, got
    assert got["error"]["type"] == "invalid_request_error" and got["error"]["param"] == "input[1]"
    missing = call_api("POST", "/v1/embeddings", {"input": "a", "model": "nope"}, version=version)
    assert missing.status == 404 and missing.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("version", VERSIONS)
def test_kettles_own_routes_keep_kettles_shape(call_api, version):
    result = call_api("POST", "/embed_multi", {"inputs": ["a", 3]}, version=version)
    assert result.status in (422, 501), result
    got = result.json()
    assert isinstance(got["error"], dict) and {"message", "type", "param", "code"} <= set(
        got["error"]
    )
    bad = call_api("POST", "/search", {"query": ""}, version=version)
    assert bad.status == 422 and bad.json()["error"]["details"], bad
    nowhere = call_api("GET", "/nope", version=version)
    assert nowhere.status == 404 and nowhere.json()["error"]["code"] == "no_route"


def test_a_stage_prefix_keeps_the_routes_shape():
    from handler.errors import shape_for

    assert shape_for("/prod/embed") == "tei"
    assert shape_for("/prod/v1/embeddings") == "openai"
    assert shape_for("/embed_image") == "kettle"
    assert shape_for("/embed_multi") == "kettle"
    assert shape_for("/v1/models/") == "openai"
    assert shape_for(None) == "kettle"


def test_the_openapi_document_declares_each_routes_error_shape(call_api):
    from handler.errors import shape_for

    spec = call_api("GET", "/openapi.json").json()
    models = {"kettle": "ErrorResponse", "openai": "OpenAIErrorResponse", "tei": "TeiErrorResponse"}
    seen = set()
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            for status, answer in operation["responses"].items():
                if int(status) < 400 or path == "/health":  # its 503 is a Health body
                    continue
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[-1] == models[shape_for(path)], (path, status, ref)
                seen.add(shape_for(path))
    assert seen == {"kettle", "openai", "tei"}
    tei = spec["components"]["schemas"]["TeiErrorResponse"]
    assert set(tei["properties"]["error_type"]["enum"]) == {
        "Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"
    }  # fmt: skip
    assert {"/info", "/v1/models"} <= set(spec["paths"])
