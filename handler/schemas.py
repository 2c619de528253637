"""Every request and response model of the HTTP API, in one place (as TEI keeps its types in one
file), and the text checks they share.

A text field takes a string or a non-empty list of non-empty strings; a lone surrogate (JSON lets
"\\ud800" through, the tokenizer does not) is refused by item and character. Each check's error
carries the item's index (ctx "index"), which the error handler turns into ``inputs[3]``; the JSON
schema says the same constraints (minLength, minItems), so the OpenAPI document matches what the
API enforces.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from handler.body import LONE_SURROGATE, json_type
from handler.settings import MAX_CANDIDATES, MAX_QUERY_CHARS, MAX_TOP_K
from handler.validation import SCHEMAS_FILE


def surrogate_problem(text: str) -> str | None:
    """ "lone surrogate U+D800 at character 5", or None for text the tokenizer can take."""
    found = LONE_SURROGATE.search(text)
    if found is None:
        return None
    return f"lone surrogate U+{ord(found.group()):04X} at character {found.start()}"


def _check_one(value: Any, field: str, index: int | None) -> None:
    where = field if index is None else f"{field}[{index}]"
    ctx: dict[str, Any] = {"field": where} if index is None else {"field": where, "index": index}
    if not isinstance(value, str):
        raise PydanticCustomError(
            "text_type", "{field} is {type}, not a string", {**ctx, "type": json_type(value)}
        )
    if not value:
        raise PydanticCustomError("empty_text", "{field} is an empty string", ctx)
    problem = surrogate_problem(value)
    if problem:
        raise PydanticCustomError("invalid_text", "{field}: {problem}", {**ctx, "problem": problem})


def _is_one_text(value: Any, field: str, code: str, expected: str) -> bool:
    """True for one (checked) string; else ``value`` must be a non-empty list, or the error says
    ``{field} must be {expected}``."""
    if isinstance(value, str):
        _check_one(value, field, None)
        return True
    if not isinstance(value, list):
        raise PydanticCustomError(
            code,
            f"{{field}} must be {expected}, not {{type}}",
            {"field": field, "type": json_type(value)},
        )
    if not value:
        raise PydanticCustomError("empty_list", "{field} is an empty list", {"field": field})
    return False


def _check_texts(value: Any, info: Any) -> Any:
    """str or a non-empty list of non-empty str; the error names the item."""
    field = info.field_name
    if not _is_one_text(value, field, "texts_type", "a string or a list of strings"):
        for index, item in enumerate(value):
            _check_one(item, field, index)
    return value


def _check_openai_input(value: Any, info: Any) -> Any:
    """OpenAI's input: a text, a non-empty list of texts, one list of token ids, or a non-empty
    list of them (ids are ints >= 0; the model's vocabulary bounds them later). The error names
    the item (``input[2]``, ``input[2][5]``)."""
    field = info.field_name
    expected = "a string, a list of strings, a list of token ids or a list of such lists"
    if _is_one_text(value, field, "input_type", expected):
        return value
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):  # one text's token ids
        _check_ids(value, field, [])
        return value
    if not isinstance(first, list):  # texts
        for index, item in enumerate(value):
            _check_one(item, field, index)
        return value
    for index, item in enumerate(value):  # token ids per text
        where = f"{field}[{index}]"
        if not isinstance(item, list):
            raise PydanticCustomError(
                "input_type",
                "{field} is {type}; a batch of token ids holds lists of ints",
                {"field": where, "index": index, "type": json_type(item)},
            )
        if not item:
            raise PydanticCustomError(
                "empty_list", "{field} is an empty list", {"field": where, "index": index}
            )
        _check_ids(item, field, [index])
    return value


def _check_ids(ids: list, field: str, path: list[int]) -> None:
    for j, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            where = field + "".join(f"[{i}]" for i in (*path, j))
            what = (
                json_type(token) if not isinstance(token, int) or isinstance(token, bool) else token
            )
            raise PydanticCustomError(
                "token_id",
                "{field} is {what}, not a token id (an integer >= 0)",
                {"field": where, "index": [*path, j], "what": what},
            )


def _check_text(value: Any, info: Any) -> Any:
    _check_one(value, info.field_name, None)
    return value


def _check_predict(value: Any, info: Any) -> Any:
    """TEI's /predict inputs: a text, a pair [text, text], or a non-empty list of [text] and
    [text, text]; the error names the item (``inputs[2][1]``)."""
    field = info.field_name
    expected = "a string, a pair [string, string] or a list of them"
    if _is_one_text(value, field, "predict_type", expected):
        return value
    if isinstance(value[0], str):  # one sequence: [text] or [text, text]
        _check_sequence(value, field, None)
    else:
        for index, item in enumerate(value):
            where = f"{field}[{index}]"
            if not isinstance(item, list):
                raise PydanticCustomError(
                    "predict_type",
                    "{field} is {type}; a batch holds lists: [text] or [text, text]",
                    {"field": where, "index": index, "type": json_type(item)},
                )
            _check_sequence(item, field, index)
    return value


def _check_sequence(items: list, field: str, index: int | None) -> None:
    """[text] or [text, text]; each text as _check_one, named ``field[index][j]``."""
    where = field if index is None else f"{field}[{index}]"
    path: list[int] = [] if index is None else [index]
    if not 1 <= len(items) <= 2:
        ctx: dict[str, Any] = {"field": where, "n": len(items)}
        if path:
            ctx["index"] = path
        raise PydanticCustomError(
            "predict_length", "{field} has {n} items; a sequence is [text] or [text, text]", ctx
        )
    for j, text in enumerate(items):
        try:
            _check_one(text, where, j)
        except PydanticCustomError as exc:
            ctx = {**(exc.context or {}), "index": [*path, j]}
            raise PydanticCustomError(exc.type, exc.message_template, ctx) from None


_TEXT_SCHEMA = {"type": "string", "minLength": 1}
_TEXT_LIST_SCHEMA = {"type": "array", "items": _TEXT_SCHEMA, "minItems": 1}

Text = Annotated[str, BeforeValidator(_check_text), WithJsonSchema(_TEXT_SCHEMA)]
Texts = Annotated[
    str | list[str],
    BeforeValidator(_check_texts),
    WithJsonSchema({"anyOf": [_TEXT_SCHEMA, _TEXT_LIST_SCHEMA]}),
]
TextList = Annotated[list[str], BeforeValidator(_check_texts), WithJsonSchema(_TEXT_LIST_SCHEMA)]
_IDS_SCHEMA = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
OpenAIInput = Annotated[
    str | list[str] | list[int] | list[list[int]],
    BeforeValidator(_check_openai_input),
    WithJsonSchema(
        {
            "anyOf": [
                _TEXT_SCHEMA,
                _TEXT_LIST_SCHEMA,
                _IDS_SCHEMA,
                {"type": "array", "items": _IDS_SCHEMA, "minItems": 1},
            ]
        }
    ),
]
_SEQUENCE_SCHEMA = {"type": "array", "items": _TEXT_SCHEMA, "minItems": 1, "maxItems": 2}
PredictInputs = Annotated[
    str | list[str] | list[list[str]],
    BeforeValidator(_check_predict),
    WithJsonSchema(
        {
            "anyOf": [
                _TEXT_SCHEMA,
                _SEQUENCE_SCHEMA,
                {"type": "array", "items": _SEQUENCE_SCHEMA, "minItems": 1},
            ]
        }
    ),
]
PositiveInt = Annotated[int, Field(ge=1)]
Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
_PRECISION = (
    "Output quantization, sentence-transformers' quantize_embeddings: int8/uint8 cut each "
    "dimension into 256 steps between the model's ranges, measured once at bake time (a text "
    "gets the same codes in every request), binary/ubinary pack the signs into bits (dim/8 "
    "bytes; binary as int8, offset by -128)."
)


# ---- requests ------------------------------------------------------------------------------------
# TEI's truncation side (kettle's truncation_direction, in TEI's spelling or kettle's).
TruncationDirection = Literal["Right", "right", "Left", "left"]
_DIRECTION = (
    "TEI's: which end truncate=true cuts from a text past max_length: Right keeps its start, "
    "Left its end (the model's prefix or prompt stays whole)."
)
_PROMPT = "TEI's prompt_name: the model's prompt to apply, query or passage (same as kind)."


class _Request(BaseModel):
    # defer_build: a model's validator is built on its first use, not at import (cold start).
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class EmbedRequest(_Request):
    """text-embeddings-inference's /embed."""

    inputs: Texts = Field(description="A text or a list of texts.")
    normalize: bool = Field(True, description="Scale each vector to unit length.")
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")
    kind: Literal["query", "passage"] | None = Field(
        None, description="Apply the model's query or passage prefix."
    )
    precision: Precision = Field("float32", description=_PRECISION)
    dimensions: PositiveInt | None = Field(
        None, description="TEI's: keep the first N dimensions (re-normalized when normalize)."
    )
    prompt_name: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="TEI's prompt_name: one of the model's named prompts (sentence-transformers' "
        "prompts, in its manifest), or query / passage for its prefixes (same as kind).",
    )
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class OpenAIEmbeddingRequest(BaseModel):
    """OpenAI's POST /v1/embeddings (unknown fields are ignored, as clients add their own)."""

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    input: OpenAIInput = Field(
        description="A text, a list of texts, or texts as token ids of the model's own tokenizer "
        "(a list of ints, or a list of them; without special tokens; read as they are, not "
        "decoded). tiktoken's ids (LangChain's OpenAIEmbeddings' default) are not this "
        "model's: send text (check_embedding_ctx_length=False)."
    )
    model: Text = Field(description="A baked dense model, e.g. all-MiniLM-L6-v2.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = Field(
        None, description="Keep the first N dimensions and re-normalize."
    )
    user: str | None = None
    precision: Precision = Field(
        "float32", description=_PRECISION + " With base64, the quantized bytes."
    )


class SparseRequest(_Request):
    """SPLADE: one sparse vector (token ids and weights) per text."""

    inputs: Texts = Field(description="A text or a list of texts.")
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")
    prompt_name: Literal["query", "passage"] | None = Field(None, description=_PROMPT)
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class RerankRequest(_Request):
    """text-embeddings-inference's /rerank."""

    query: Text
    texts: TextList
    top_n: PositiveInt | None = None
    return_text: bool = False
    raw_scores: bool = Field(False, description="Logits instead of their sigmoid (0..1).")
    truncate: bool = Field(True, description="Cut pairs past the model's max_length; else 413.")
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class EmbedImageRequest(_Request):
    """Images -> one normalised vector each."""

    images: Texts = Field(
        description=(
            "An image or a list of images: each base64 of the image file's bytes (a data: URL "
            "works) or an s3://bucket/key URI in a bucket listed in IMAGE_BUCKETS."
        )
    )
    model: Text | None = Field(
        None, description="A baked image model (default: KETTLE_IMAGE_MODEL)."
    )


class EmbedMultiRequest(_Request):
    """Late interaction (ColBERT): per-token vectors."""

    inputs: Texts = Field(description="A text or a list of texts.")
    kind: Literal["query", "document"] = Field(
        "document",
        description=(
            "document: [D] marker, punctuation dropped; query: [Q] marker, [MASK]-padded to "
            "the model's query length."
        ),
    )
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")


class DecodeRequest(_Request):
    """TEI's /decode: token ids -> text."""

    ids: list[int] | list[list[int]] = Field(description="Token ids, or a list of them.")
    skip_special_tokens: bool = True


class SimilarityInputs(_Request):
    source_sentence: Text
    sentences: TextList


class SimilarityRequest(_Request):
    """TEI's /similarity: cosine similarity of a sentence to each of several."""

    inputs: SimilarityInputs
    prompt_name: Literal["query", "passage"] | None = Field(None, description=_PROMPT)
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class EmbedAllRequest(_Request):
    """TEI's /embed_all: the dense model's token vectors, no pooling."""

    inputs: Texts = Field(description="A text or a list of texts.")
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")
    prompt_name: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="One of the model's named prompts, or query / passage for its prefixes.",
    )
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class PredictRequest(_Request):
    """TEI's /predict, served by the cross-encoder (a sequence-pair classifier)."""

    inputs: PredictInputs = Field(
        description="A pair [query, text], or a list of pairs [[query, text], ...]. The "
        "reranker scores pairs: a lone text ([text] or a string) is a 422."
    )
    raw_scores: bool = Field(False, description="Logits instead of their sigmoid (0..1).")
    truncate: bool = Field(True, description="Cut pairs past the model's max_length; else 413.")
    truncation_direction: TruncationDirection = Field("Right", description=_DIRECTION)


class TokenizeRequest(_Request):
    inputs: Texts
    add_special_tokens: bool = True


# ---- /search (the backends: handler.search, imported by the route on its first call) ----------
SearchMode = Literal["dense", "sparse", "hybrid"]


class SearchFilter(_Request):
    source_prefix: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Only chunks of objects whose key starts with this."
    )


class SearchRequest(_Request):
    """The body of POST /search."""

    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)] = Field(
        description="What to look for."
    )
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = Field(10, description="Results wanted.")
    mode: SearchMode = Field(
        "dense", description="dense vectors, sparse (BM25 / SPLADE), or both fused (RRF)."
    )
    rerank: bool = Field(False, description="Reorder the candidates with the cross-encoder.")
    candidates: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] | None = Field(
        None, description="Candidates fetched before fusion / reranking (default 4 x top_k, >= 20)."
    )
    filter: SearchFilter | None = None


# ---- responses -----------------------------------------------------------------------------------
class _Response(BaseModel):
    model_config = ConfigDict(defer_build=True)  # only the OpenAPI document builds these


class Embedding(_Response):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | list[int] | str


class Usage(_Response):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(_Response):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SparseValue(_Response):
    """One non-zero weight of a sparse vector (TEI's /embed_sparse item)."""

    index: int = Field(description="The vocabulary id.")
    value: float


class RankedText(_Response):
    index: int
    score: float
    text: str | None = None


class Prediction(_Response):
    score: float
    label: str


class Token(_Response):
    id: int
    text: str
    special: bool
    start: int
    stop: int


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    kind: str
    dim: int
    max_length: int
    fingerprint: str
    quantization: str
    loaded: bool
    serves: bool


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    configured: dict[str, str | None]


class OpenAIModel(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When it was baked (Unix seconds).")
    owned_by: str = Field(description="The organisation in its name (kettle for a bare name).")
    kind: str = Field(description="kettle's kind: dense, sparse, rerank, image, late_interaction.")


class OpenAIModelList(_Response):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class EmbeddingModelType(_Response):
    pooling: str = Field(description="TEI's pooling name: mean, cls, last_token, splade.")


class ModelType(_Response):
    embedding: EmbeddingModelType


class Info(_Response):
    """text-embeddings-inference's /info, for the dense model."""

    model_id: str
    model_sha: str | None = Field(None, description="The Hub revision it was baked from.")
    model_dtype: str = Field(description="float32, or int8 / uint8 for a quantized bake.")
    served_model_name: str
    model_type: ModelType
    max_concurrent_requests: int = Field(description="Per Lambda instance.")
    max_input_length: int = Field(description="Tokens per text (the model's max_length).")
    max_batch_tokens: int = Field(description="Padded tokens per ONNX Runtime run.")
    max_batch_requests: int | None = None
    max_client_batch_size: int = Field(description="Texts per request (MAX_TEXTS).")
    auto_truncate: bool
    tokenization_workers: int
    version: str = Field(description="kettle's version.")
    sha: str | None = None
    docker_label: str | None = None


class Health(_Response):
    status: Literal["ok", "unavailable"]
    model: str
    baked: bool
    files_ok: bool | None = Field(
        None, description="The model's files match its manifest (null when it is not baked)."
    )
    problem: str | None = None
    loaded: list[dict[str, Any]]


class ErrorDetail(_Response):
    field: str
    message: str
    type: str | None = None


class ErrorInfo(_Response):
    message: str = Field(description="What is wrong, naming the field and item.")
    type: str
    param: str | None = Field(None, description='The field at fault, e.g. "inputs[3]".')
    code: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(_Response):
    """kettle's own routes' error body."""

    error: ErrorInfo
    request_id: str | None = None


class OpenAIErrorInfo(_Response):
    message: str = Field(description="What is wrong, naming the field and item.")
    type: str
    param: str | None = Field(None, description='The field at fault, e.g. "input[3]".')
    code: str


class OpenAIErrorResponse(_Response):
    """OpenAI's error body (/v1/*)."""

    error: OpenAIErrorInfo
    request_id: str | None = None


class TeiErrorResponse(_Response):
    """text-embeddings-inference's error body (its routes), with kettle's code and field."""

    error: str = Field(description="What is wrong, naming the field and item.")
    error_type: Literal["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"]
    code: str = Field(description="kettle's error code (handler/errors.py).")
    param: str | None = Field(None, description='The field at fault, e.g. "inputs[3]".')
    request_id: str | None = None


class SearchResult(_Response):
    id: str = Field(description="The chunk id: <source key>#<row>.")
    score: float
    source_key: str
    start: int | None = Field(description="Character offset of the chunk in its document.")
    end: int | None
    text: str | None = Field(description="The chunk text (S3 Vectors: when it fit 40 KB).")


class SearchResponse(_Response):
    results: list[SearchResult]
    model: str
    mode: SearchMode


# ---- the requests' JSON schemas, for the request path ---------------------------------------
REQUEST_MODELS = (
    "EmbedRequest",
    "OpenAIEmbeddingRequest",
    "SparseRequest",
    "RerankRequest",
    "EmbedImageRequest",
    "EmbedMultiRequest",
    "DecodeRequest",
    "SimilarityRequest",
    "EmbedAllRequest",
    "PredictRequest",
    "TokenizeRequest",
    "SearchRequest",
)


def request_schemas() -> dict[str, Any]:
    """Each request model's JSON schema (validation mode): what handler.validation checks a body
    against without importing pydantic, written to request_schemas.json by
    ``python -m handler.schemas``; a test holds the file to these models."""
    return {name: globals()[name].model_json_schema(mode="validation") for name in REQUEST_MODELS}


def schemas_json() -> str:
    return json.dumps(request_schemas(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


__all__ = [
    "REQUEST_MODELS",
    "DecodeRequest",
    "EmbedAllRequest",
    "EmbedImageRequest",
    "EmbedMultiRequest",
    "EmbedRequest",
    "Embedding",
    "ErrorResponse",
    "OpenAIErrorResponse",
    "TeiErrorResponse",
    "Health",
    "Info",
    "OpenAIModelList",
    "ModelList",
    "OpenAIEmbeddingRequest",
    "OpenAIEmbeddingResponse",
    "Prediction",
    "PredictRequest",
    "RankedText",
    "RerankRequest",
    "SearchFilter",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "SimilarityRequest",
    "SparseRequest",
    "SparseValue",
    "Text",
    "TextList",
    "Texts",
    "Token",
    "TokenizeRequest",
    "surrogate_problem",
]


def main(argv: list[str] | None = None) -> int:
    """python -m handler.schemas: rewrite request_schemas.json from the models (or --check it)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    current = schemas_json()
    if args.check:
        stale = SCHEMAS_FILE.read_text(encoding="utf-8") != current
        print(f"{SCHEMAS_FILE}: {'stale' if stale else 'current'}")
        return int(stale)
    SCHEMAS_FILE.write_text(current, encoding="utf-8")
    print(f"wrote {SCHEMAS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
