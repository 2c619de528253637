"""handler.validation: a valid body is checked without pydantic, and the check never accepts what
the pydantic model would refuse or reads it differently; request_schemas.json is the models'."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler import schemas, validation
from handler.body import HugeNumber
from handler.errors import ApiError
from handler.validation import RequestFields, parse_request

SCHEMAS = validation.schemas()


def test_request_schemas_json_is_generated_from_the_models():
    assert validation.SCHEMAS_FILE == schemas.SCHEMAS_FILE
    assert set(SCHEMAS) == set(schemas.REQUEST_MODELS)
    assert schemas.SCHEMAS_FILE.read_text(encoding="utf-8") == schemas.schemas_json(), (
        "handler/request_schemas.json is stale: run `.venv/bin/python -m handler.schemas`"
    )


def test_every_route_takes_a_model_the_check_knows():
    from handler import api
    from handler.middleware import request_model

    taken = set()
    for router in api.ROUTERS:
        for func in router._routes.values():
            if (name := request_model(func)) is not None:
                taken.add(name)
    assert taken == set(schemas.REQUEST_MODELS)


# One ordinary body per request model: each must be accepted without pydantic.
VALID = {
    "EmbedRequest": {"inputs": ["tea", "coffee"], "normalize": False, "dimensions": 8},
    "OpenAIEmbeddingRequest": {"input": "tea", "model": "all-MiniLM-L6-v2", "extra": 1},
    "SparseRequest": {"inputs": "tea", "prompt_name": "query"},
    "RerankRequest": {"query": "tea", "texts": ["a", "b"], "top_n": 1, "return_text": True},
    "EmbedImageRequest": {"images": ["aGk="]},
    "EmbedMultiRequest": {"inputs": ["tea"], "kind": "query"},
    "DecodeRequest": {"ids": [[101, 102], [7]]},
    "SimilarityRequest": {"inputs": {"source_sentence": "tea", "sentences": ["a", "b"]}},
    "EmbedAllRequest": {"inputs": "tea", "prompt_name": "query"},
    "PredictRequest": {"inputs": [["tea", "a cup"], ["tea"]], "raw_scores": True},
    "TokenizeRequest": {"inputs": "tea", "add_special_tokens": False},
    "SearchRequest": {
        "query": "tea",
        "top_k": 3,
        "mode": "hybrid",
        "filter": {"source_prefix": "a/"},
    },
}


def _plain(value: Any) -> Any:
    if isinstance(value, RequestFields):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _model(name: str, data: Any):
    return getattr(schemas, name).model_validate(data)


@pytest.mark.parametrize("name", schemas.REQUEST_MODELS)
def test_an_ordinary_body_is_accepted_without_pydantic_with_the_models_values(name):
    request = parse_request(name, VALID[name])
    assert isinstance(request, RequestFields), "declined: pydantic would be imported"
    assert _plain(request) == _model(name, VALID[name]).model_dump()


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("EmbedRequest", {"inputs": "a\ud800b"}),  # a lone surrogate: the model's own check
        ("EmbedRequest", {"inputs": "tea", "dimensions": 1.0}),  # strict: not an integer
        ("EmbedRequest", {"inputs": "tea", "dimensions": True}),
        ("EmbedRequest", {"inputs": "tea", "dimensions": HugeNumber(5000)}),
        ("EmbedRequest", {"inputs": "tea", "normalise": True}),  # not a field
        ("EmbedRequest", {"inputs": []}),
        ("EmbedRequest", {}),
        ("SimilarityRequest", {"inputs": {"source_sentence": "a", "sentences": [], "x": 1}}),
        ("SearchRequest", {"query": "tea", "top_k": 101}),
        ("PredictRequest", {"inputs": ["a", "b", "c"]}),
    ],
)
def test_what_the_model_refuses_goes_to_the_model_and_gets_its_error(name, body):
    with pytest.raises(validation._Declined):
        validation._object(SCHEMAS[name], body, SCHEMAS[name].get("$defs", {}))
    with pytest.raises(ApiError) as caught:
        parse_request(name, body)
    assert caught.value.status == 422 and caught.value.param


# ---- the two agree: random bodies built from each model's schema, mostly near-valid ------------
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(""),
    st.just("\udc80"),
    st.just("tea \ud800"),
    st.builds(HugeNumber, st.just(5000)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "inputs"]), st.integers(), max_size=2),
)
_CHARS = st.characters(codec="utf-8")  # lone surrogates come as junk


def _or_junk(valid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` five times in six, else junk (a plain ``|`` would weigh each junk kind alike)."""
    return st.integers(0, 5).flatmap(lambda pick: _JUNK if pick == 0 else valid)


def _from(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Values for ``schema``: mostly valid, some past its bounds or of the wrong type (junk:
    empty strings and lists, lone surrogates, floats, huge numbers)."""
    if "$ref" in schema:
        return _from(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, depth)
    if "anyOf" in schema:
        return st.one_of([_from(option, defs, depth) for option in schema["anyOf"]])
    if "enum" in schema:
        return _or_junk(st.sampled_from([*schema["enum"], "other", schema["enum"][0].lower()]))
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 8)
        return _or_junk(st.text(_CHARS, min_size=low, max_size=min(high, 12)))
    if kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 50)
        return _or_junk(st.integers(low - 1, high + 1))
    if kind == "boolean":
        return _or_junk(st.booleans())
    if kind == "null":
        return st.none()
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", 3)
        items = _from(schema.get("items", {}), defs, depth + 1)
        return _or_junk(st.lists(items, min_size=low, max_size=min(high, 4)))
    if kind == "object" and depth < 3:
        fields = {k: _from(v, defs, depth + 1) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        optional = sorted(set(fields) - required)
        # Every required field, but now and then one left out; any of the others; now and then
        # a field the model does not have.
        chosen = st.tuples(
            st.sets(st.sampled_from(optional)) if optional else st.just(set()),
            st.sampled_from([None, *sorted(required)]) if required else st.just(None),
            st.integers(0, 9),
        ).map(lambda t: (t[0] | required) - ({t[1]} if t[2] == 0 else set()))
        extra = st.integers(0, 9).flatmap(
            lambda pick: st.just({}) if pick else st.fixed_dictionaries({"extra": _JUNK})
        )
        return st.builds(
            lambda keys, values, more: {k: values[k] for k in keys} | more,
            chosen,
            st.fixed_dictionaries(fields),
            extra,
        )
    return _JUNK


@pytest.mark.parametrize("name", schemas.REQUEST_MODELS)
def test_the_check_accepts_only_what_the_model_accepts_and_reads_it_alike(name):
    schema = SCHEMAS[name]
    defs = schema.get("$defs", {})
    accepted = []

    # KETTLE_FUZZ_EXAMPLES=2000 KETTLE_FUZZ_RANDOM=1 for a longer hunt; the suite runs fixed ones.
    @settings(
        max_examples=int(os.environ.get("KETTLE_FUZZ_EXAMPLES") or 200),
        deadline=None,
        derandomize=not os.environ.get("KETTLE_FUZZ_RANDOM"),
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=_from(schema, defs))
    def agree(body):
        try:
            fast = validation._object(schema, body, defs)
        except validation._Declined:
            return
        assert _plain(fast) == _model(name, body).model_dump()  # raises if the model refuses
        accepted.append(body)

    agree()
    assert accepted, "no generated body was accepted: the property was never tried"
