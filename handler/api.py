"""The HTTP API: routes on Powertools resolvers, pydantic request models, JSON errors.

One set of routes serves API Gateway HTTP API (payload 2.0, and Lambda function URLs) and REST API
(payload 1.0) events: ``handle`` picks the resolver by the event's shape. Every error is JSON that
names the field and the item at fault; a 500 says only that it failed and the request id.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Annotated, Any, Literal

import numpy as np
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.exceptions import ValidationException
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from handler.clients import client
from handler.images import ImageDecodeError, ImageTooLargeError, decode_image
from handler.models import (
    MODELS,
    ModelNotConfiguredError,
    ModelUnavailableError,
    configured_names,
    describe_baked,
    resolve_name,
)
from handler.observability import logger, metrics
from handler.settings import Settings

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024 - 1024  # Lambda's 6 MB synchronous response, less headers
JSON = "application/json"
TITLE = "kettle"


# ---- errors --------------------------------------------------------------------------------------
class ApiError(Exception):
    """An error the client can act on: status, message, and the request field it is about."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.details = details


ERROR_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
}


def error_body(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    details: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> str:
    """The one error shape (OpenAI's, so its SDK shows the message): {"error": {...}}."""
    kind = ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "server_error")
    error: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if details:
        error["details"] = details
    body: dict[str, Any] = {"error": error}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body)


# ---- request models ------------------------------------------------------------------------------
def _check_texts(value: Any, info: Any) -> Any:
    """str or a non-empty list of non-empty str; the error names the item (ctx "index")."""
    field = info.field_name
    if isinstance(value, str):
        if not value:
            raise PydanticCustomError("empty_text", "{field} is an empty string", {"field": field})
        return value
    if not isinstance(value, list):
        raise PydanticCustomError(
            "texts_type",
            "{field} must be a string or a list of strings, not {type}",
            {"field": field, "type": _json_type(value)},
        )
    if not value:
        raise PydanticCustomError("empty_list", "{field} is an empty list", {"field": field})
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise PydanticCustomError(
                "text_type",
                "{field}[{index}] is {type}, not a string",
                {"field": field, "index": index, "type": _json_type(item)},
            )
        if not item:
            raise PydanticCustomError(
                "empty_text",
                "{field}[{index}] is an empty string",
                {"field": field, "index": index},
            )
    return value


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", dict: "an object"}
    names.update({list: "a list", type(None): "null", str: "a string"})
    return names.get(type(value), type(value).__name__)


Texts = Annotated[str | list[str], BeforeValidator(_check_texts)]
TextList = Annotated[list[str], BeforeValidator(_check_texts)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EmbedRequest(_Request):
    """text-embeddings-inference's /embed."""

    inputs: Texts = Field(description="A text or a list of texts.")
    normalize: bool = Field(True, description="Scale each vector to unit length.")
    truncate: bool = Field(True, description="Cut texts past the model's max_length; else 413.")
    kind: Literal["query", "passage"] | None = Field(
        None, description="Apply the model's query or passage prefix."
    )


class OpenAIEmbeddingRequest(BaseModel):
    """OpenAI's POST /v1/embeddings (unknown fields are ignored, as clients add their own)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    input: Texts = Field(description="A text or a list of texts (token arrays are not accepted).")
    model: NonEmptyStr = Field(description="A baked dense model, e.g. all-MiniLM-L6-v2.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Keep the first N dimensions and re-normalize."
    )
    user: str | None = None


class SparseRequest(_Request):
    inputs: Texts
    truncate: bool = True


class RerankRequest(_Request):
    """text-embeddings-inference's /rerank."""

    query: NonEmptyStr
    texts: TextList
    top_n: Annotated[int, Field(ge=1)] | None = None
    return_text: bool = False
    raw_scores: bool = Field(False, description="Logits instead of their sigmoid (0..1).")
    truncate: bool = True


class EmbedImageRequest(_Request):
    """Images -> one normalised vector each."""

    images: Texts = Field(
        description=(
            "An image or a list of images: each base64 of the image file's bytes (a data: URL "
            "works) or an s3://bucket/key URI in a bucket listed in IMAGE_BUCKETS."
        )
    )
    model: NonEmptyStr | None = Field(
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


class TokenizeRequest(_Request):
    inputs: Texts
    add_special_tokens: bool = True


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SparseVector(BaseModel):
    indices: list[int]
    values: list[float]


class RankedText(BaseModel):
    index: int
    score: float
    text: str | None = None


# ---- route logic (resolver-independent) --------------------------------------------------------
def _as_list(texts: str | list[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else texts


def _check_count(texts: list[str], field: str, settings: Settings, noun: str = "texts") -> None:
    if len(texts) > settings.max_texts:
        raise ApiError(
            413,
            f"{field} has {len(texts)} {noun}; at most {settings.max_texts} per request (MAX_TEXTS)",
            field,
            "too_many_texts",
        )


def _check_lengths(model: Any, texts: list[str], field: str) -> None:
    """truncate=false: a text past the model's max_length is an error naming it."""
    limit = model.max_length
    for index, count in enumerate(model.token_counts(texts, truncate=False)):
        if count > limit:
            raise ApiError(
                413,
                f"{field}[{index}] has {count} tokens; {model.model_name} takes at most {limit} "
                "(send truncate=true to cut it)",
                f"{field}[{index}]",
                "text_too_long",
            )


def _model(kind: str, settings: Settings, name: str | None = None) -> Any:
    try:
        return MODELS.get(kind, settings, name)
    except ModelUnavailableError as exc:
        if name is None:  # the deployment's own model is missing: not the caller's fault
            raise ApiError(503, str(exc), None, "model_not_baked") from None
        raise


def _dense_vectors(model: Any, texts: list[str], normalize: bool, prefix: str = "") -> np.ndarray:
    if prefix:
        texts = [prefix + t for t in texts]
    rows = list(model.embed(texts, normalize=normalize))
    return np.stack(rows).astype(np.float32, copy=False)


def _record(operation: str, texts: int, tokens: int, started: float) -> None:
    metrics.add_metric(name="Texts", unit=MetricUnit.Count, value=texts)
    metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=tokens)
    metrics.add_metric(
        name="InferenceLatency",
        unit=MetricUnit.Milliseconds,
        value=(time.perf_counter() - started) * 1000,
    )
    logger.info(operation, extra={"texts": texts, "tokens": tokens})


def _json_floats(matrix: np.ndarray) -> list:
    """float32 values as short JSON numbers (8 decimals): about half the bytes of float64 repr."""
    return np.round(matrix.astype(np.float64), 8).tolist()


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"))
    if len(body) > LAMBDA_RESPONSE_LIMIT:
        raise ApiError(
            413,
            f"the response would be {len(body)} bytes, over Lambda's 6 MB limit: send fewer texts "
            "per request (or encoding_format=base64 on /v1/embeddings)",
            None,
            "response_too_large",
        )
    return Response(status_code=status, content_type=JSON, body=body)


def embed(request: EmbedRequest, settings: Settings) -> Response:
    texts = _as_list(request.inputs)
    _check_count(texts, "inputs", settings)
    model = _model("dense", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    prefix = {"query": model.query_prefix, "passage": model.passage_prefix}.get(request.kind or "")
    started = time.perf_counter()
    vectors = _dense_vectors(model, texts, request.normalize, prefix or "")
    _record("embed", len(texts), model.token_count(texts), started)
    return json_response(_json_floats(vectors))


def openai_embeddings(request: OpenAIEmbeddingRequest, settings: Settings) -> Response:
    texts = _as_list(request.input)
    _check_count(texts, "input", settings)
    name = resolve_name(request.model, "dense", settings)
    model = _model("dense", settings, name)
    dim = model.embedding_size
    if request.dimensions is not None and request.dimensions > dim:
        raise ApiError(
            422,
            f"dimensions is {request.dimensions}; {name} makes {dim}-dimensional vectors",
            "dimensions",
            "invalid_dimensions",
        )
    started = time.perf_counter()
    vectors = _dense_vectors(model, texts, True)
    if request.dimensions is not None and request.dimensions < dim:
        from kettle.pooling import normalize

        vectors = normalize(vectors[:, : request.dimensions])
    tokens = model.token_count(texts)
    _record("openai_embeddings", len(texts), tokens, started)
    if request.encoding_format == "base64":
        encoded: list = [
            base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors
        ]
    else:
        encoded = _json_floats(vectors)
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)
            ],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def embed_sparse(request: SparseRequest, settings: Settings) -> Response:
    texts = _as_list(request.inputs)
    _check_count(texts, "inputs", settings)
    model = _model("sparse", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    started = time.perf_counter()
    result = [
        {
            "indices": np.asarray(e.indices).tolist(),
            "values": np.round(np.asarray(e.values, np.float64), 6).tolist(),
        }
        for e in model.embed(texts)
    ]
    _record("embed_sparse", len(texts), model.token_count(texts), started)
    return json_response(result)


def rerank(request: RerankRequest, settings: Settings) -> Response:
    texts = request.texts
    _check_count(texts, "texts", settings)
    model = _model("rerank", settings)
    if not request.truncate:
        limit = model.max_length
        query_tokens = model.token_counts([request.query], truncate=False)[0]
        for index, count in enumerate(model.token_counts(texts, truncate=False)):
            # [CLS] query [SEP] text [SEP]: the two per-text counts share one [CLS].
            if query_tokens + count - 1 > limit:
                raise ApiError(
                    413,
                    f"query + texts[{index}] is {query_tokens + count - 1} tokens; "
                    f"{model.model_name} takes at most {limit} (send truncate=true to cut it)",
                    f"texts[{index}]",
                    "text_too_long",
                )
    started = time.perf_counter()
    scores = model.rank(request.query, texts, top_n=request.top_n, sigmoid=not request.raw_scores)
    ranked = ranked_results(scores, request.top_n)
    tokens = model.token_count([request.query]) * len(texts) + model.token_count(texts)
    _record("rerank", len(texts), tokens, started)
    out = []
    for index, score in ranked:
        item: dict[str, Any] = {"index": index, "score": round(float(score), 6)}
        if request.return_text:
            item["text"] = texts[index]
        out.append(item)
    return json_response(out)


def ranked_results(result: Any, top_n: int | None) -> list[tuple[int, float]]:
    """(index, score) best first from what TextCrossEncoder.rerank returns: scores in input order,
    or ranked items with index and score (attributes, mapping keys or pairs)."""
    items = list(result)
    pairs: list[tuple[int, float]] = []
    for position, item in enumerate(items):
        if isinstance(item, (int, float, np.number)):
            pairs.append((position, float(item)))
        elif isinstance(item, dict):
            pairs.append((int(item["index"]), float(item["score"])))
        elif hasattr(item, "index") and hasattr(item, "score"):
            pairs.append((int(item.index), float(item.score)))
        else:
            index, score = item
            pairs.append((int(index), float(score)))
    pairs.sort(key=lambda p: -p[1])
    return pairs[:top_n] if top_n else pairs


# ---- /embed_image --------------------------------------------------------------------------------
_URL_SAFE = str.maketrans("-_", "+/")


def _image_bytes_from_base64(item: str, where: str, settings: Settings) -> bytes:
    """The bytes of a base64 image (standard or URL-safe alphabet, padding optional, a data: URL
    prefix and line breaks allowed); 422 when it is not base64, 413 past MAX_IMAGE_BYTES."""
    data = item
    if data[:5].lower() == "data:":
        head, comma, data = data.partition(",")
        if not comma or not head.lower().endswith(";base64"):
            raise ApiError(
                422, f"{where} is a data: URL without base64 data", where, "invalid_image"
            )
    compact = "".join(data.split()).translate(_URL_SAFE)
    limit = settings.max_image_bytes
    if len(compact) // 4 * 3 > limit + 3:  # too large before decoding a byte
        raise ApiError(
            413,
            f"{where} is about {len(compact) // 4 * 3} bytes; at most {limit} (MAX_IMAGE_BYTES)",
            where,
            "image_too_large",
        )
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            422,
            f"{where} is neither valid base64 nor an s3://bucket/key URI",
            where,
            "invalid_image",
        ) from None
    if len(raw) > limit:
        raise ApiError(
            413,
            f"{where} is {len(raw)} bytes; at most {limit} (MAX_IMAGE_BYTES)",
            where,
            "image_too_large",
        )
    return raw


def _s3_location(item: str, where: str, settings: Settings) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI the function may read; 422 malformed, 403 other buckets."""
    bucket, slash, key = item[len("s3://") :].partition("/")
    if not bucket or not slash or not key:
        raise ApiError(
            422, f"{where}: an S3 image is s3://bucket/key, got {item!r}", where, "invalid_image"
        )
    if bucket not in settings.image_buckets:
        allowed = ", ".join(settings.image_buckets)
        which = f"the buckets it may read are: {allowed}" if allowed else "IMAGE_BUCKETS is empty"
        raise ApiError(
            403,
            f"{where}: this function may not read images from bucket {bucket!r}; {which} "
            "(IMAGE_BUCKETS)",
            where,
            "bucket_not_allowed",
        )
    return bucket, key


def _image_from_s3(bucket: str, key: str, where: str, settings: Settings) -> bytes:
    """The object's bytes, at most MAX_IMAGE_BYTES; S3's refusals as errors naming ``where``."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri = f"s3://{bucket}/{key}"
    limit = settings.max_image_bytes
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key)
        size = response.get("ContentLength")
        if size is not None and size > limit:
            response["Body"].close()
            raise ApiError(
                413,
                f"{where} ({uri}) is {size} bytes; at most {limit} (MAX_IMAGE_BYTES)",
                where,
                "image_too_large",
            )
        raw = response["Body"].read(limit + 1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}:
            raise ApiError(
                422, f"{where}: {uri} does not exist", where, "image_not_found"
            ) from None
        if code in {"AccessDenied", "403", "AllAccessDisabled"}:
            raise ApiError(
                403,
                f"{where}: {uri} cannot be read (it does not exist, or this function may not "
                "read it)",
                where,
                "image_access_denied",
            ) from None
        logger.warning("s3 image read failed", extra={"uri": uri, "code": code})
        raise ApiError(
            502, f"{where}: reading {uri} failed ({code or 'S3 error'})", where, "s3_error"
        ) from None
    except BotoCoreError as exc:
        logger.warning("s3 image read failed", extra={"uri": uri, "error": str(exc)})
        raise ApiError(
            502, f"{where}: reading {uri} failed ({type(exc).__name__})", where, "s3_error"
        ) from None
    if len(raw) > limit:
        raise ApiError(
            413,
            f"{where} ({uri}) is over {limit} bytes (MAX_IMAGE_BYTES)",
            where,
            "image_too_large",
        )
    return raw


def _image_sources(items: list[str], settings: Settings) -> list[bytes | tuple[str, str]]:
    """Every item checked before any work: base64 decoded to bytes, s3:// URIs to (bucket, key)."""
    sources: list[bytes | tuple[str, str]] = []
    for index, item in enumerate(items):
        where = f"images[{index}]"
        scheme = item.split("://", 1)[0].lower() if "://" in item[:16] else None
        if scheme == "s3":
            sources.append(_s3_location(item, where, settings))
        elif scheme is not None:
            raise ApiError(
                422,
                f"{where}: {scheme}:// URIs are not read; send base64 bytes or an s3:// URI",
                where,
                "invalid_image",
            )
        else:
            sources.append(_image_bytes_from_base64(item, where, settings))
    return sources


def _decoded_images(sources: list[bytes | tuple[str, str]], settings: Settings) -> Any:
    """PIL images one at a time (S3 objects fetched as the model reaches them)."""
    for index, source in enumerate(sources):
        where = f"images[{index}]"
        raw = source if isinstance(source, bytes) else _image_from_s3(*source, where, settings)
        try:
            yield decode_image(raw, where, settings.max_image_pixels)
        except ImageTooLargeError as exc:
            raise ApiError(413, str(exc), where, "image_too_large") from None
        except ImageDecodeError as exc:
            raise ApiError(422, str(exc), where, "invalid_image") from None


def embed_image(request: EmbedImageRequest, settings: Settings) -> Response:
    from kettle.pooling import normalize

    items = _as_list(request.images)
    _check_count(items, "images", settings, "images")
    name = resolve_name(request.model, "image", settings) if request.model else None
    model = _model("image", settings, name)
    sources = _image_sources(items, settings)
    started = time.perf_counter()
    try:
        rows = list(model.embed(_decoded_images(sources, settings)))
    except ValueError as exc:  # kettle's preprocessing names the image it cannot batch
        if str(exc).startswith("images["):
            raise ApiError(
                422, str(exc), str(exc).split("]", 1)[0] + "]", "invalid_image"
            ) from None
        raise
    vectors = np.stack(rows).astype(np.float32, copy=False)
    if not model.manifest.normalize:
        vectors = normalize(vectors)
    metrics.add_metric(name="Images", unit=MetricUnit.Count, value=len(items))
    metrics.add_metric(
        name="InferenceLatency",
        unit=MetricUnit.Milliseconds,
        value=(time.perf_counter() - started) * 1000,
    )
    logger.info("embed_image", extra={"images": len(items)})
    return json_response(_json_floats(vectors))


# ---- /embed_multi --------------------------------------------------------------------------------
def embed_multi(request: EmbedMultiRequest, settings: Settings) -> Response:
    texts = _as_list(request.inputs)
    _check_count(texts, "inputs", settings)
    model = _model("late_interaction", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    started = time.perf_counter()
    embed = model.query_embed if request.kind == "query" else model.embed
    rows = [_json_floats(r) for r in embed(texts)]
    _record("embed_multi", len(texts), model.token_count(texts), started)
    return json_response(rows)


def tokenize(request: TokenizeRequest, settings: Settings) -> Response:
    texts = _as_list(request.inputs)
    _check_count(texts, "inputs", settings)
    model = _model("dense", settings)
    tokenizer = model.tokenizer.tokenizer
    encodings = tokenizer.encode_batch(texts, add_special_tokens=request.add_special_tokens)
    result = [
        [
            {"id": i, "text": t, "special": bool(s), "start": a, "stop": b}
            for i, t, s, (a, b) in zip(
                e.ids, e.tokens, e.special_tokens_mask, e.offsets, strict=True
            )
        ]
        for e in encodings
    ]
    return json_response(result)


def list_models(settings: Settings) -> Response:
    configured = {kind: name or None for kind, name in configured_names(settings).items()}
    data = []
    for d in describe_baked(settings):
        data.append(
            {
                "id": d["name"],
                "object": "model",
                "created": 0,
                "owned_by": "kettle",
                **{k: v for k, v in d.items() if k != "name"},
                "loaded": MODELS.is_loaded(d["name"]),
                "serves": configured.get(d["kind"]) == d["name"],
            }
        )
    return json_response({"object": "list", "data": data, "configured": configured})


def health(settings: Settings) -> Response:
    baked = {d["name"] for d in describe_baked(settings)}
    status = 200 if settings.model in baked else 503
    return json_response(
        {
            "status": "ok" if status == 200 else "unavailable",
            "model": settings.model,
            "baked": settings.model in baked,
            "loaded": MODELS.loaded(),
        },
        status,
    )


# ---- validation errors -> one JSON shape ---------------------------------------------------------
def _field_path(error: dict[str, Any]) -> str:
    """("body", "inputs", 2) -> "inputs[2]"; an "index" in the error's ctx adds the item."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] == "body":
        loc = loc[1:]
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    ctx = error.get("ctx") or {}
    if "index" in ctx and parts:
        parts[-1] += f"[{ctx['index']}]"
    return ".".join(parts)


def validation_response(exc: ValidationException, request_id: str | None) -> Response:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        error = next(e for e in errors if e.get("type") == "json_invalid")
        position = (error.get("loc") or ("body", "?"))[-1]
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        message = f"the request body is not valid JSON: {reason} at character {position}"
        return Response(
            400, JSON, error_body(400, message, "body", "json_invalid", None, request_id)
        )
    details = []
    for e in errors:
        field = _field_path(e)
        if e.get("type") == "missing" and not field:
            message = "the request body is missing: send a JSON object"
        elif e.get("type") == "missing":
            message = f"{field} is required"
        elif e.get("type") == "extra_forbidden":
            message = f"{field} is not a field of this request"
        elif e.get("type") in {"model_type", "model_attributes_type", "dict_type"} and not field:
            message = f"the request body must be a JSON object, not {_json_type(e.get('input'))}"
        else:
            msg = str(e.get("msg", "invalid"))
            message = msg if field and msg.startswith(field.split("[")[0]) else f"{field}: {msg}"
        details.append({"field": field or "body", "message": message, "type": e.get("type")})
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    body = error_body(
        422, first["message"], first["field"], "validation_error", details, request_id
    )
    return Response(422, JSON, body)


# ---- resolvers -----------------------------------------------------------------------------------
def create_resolver(cls: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    """A resolver of ``cls`` with every route and error handler."""
    app = cls(enable_validation=True)
    # Routes return Response objects and carry no return annotation: Powertools would try to
    # validate the body against it (the schema lives in `responses=` instead).

    def request_id() -> str | None:
        context = getattr(app, "lambda_context", None)
        return getattr(context, "aws_request_id", None)

    def settings() -> Settings:
        return Settings.from_env()

    openapi_200 = {200: {"description": "OK"}}

    @app.post(
        "/embed", operation_id="embed", summary="Dense embeddings (text-embeddings-inference shape)"
    )
    def _embed(request: EmbedRequest):
        return embed(request, settings())

    @app.post(
        "/v1/embeddings",
        operation_id="createEmbedding",
        summary="OpenAI-compatible embeddings",
        responses={
            200: {
                "description": "OK",
                "content": {JSON: {"model": OpenAIEmbeddingResponse}},
            }
        },
    )
    def _openai(request: OpenAIEmbeddingRequest):
        return openai_embeddings(request, settings())

    @app.post(
        "/embed_sparse",
        operation_id="embedSparse",
        summary="Sparse (SPLADE) embeddings",
        responses={200: {"description": "OK", "content": {JSON: {"model": list[SparseVector]}}}},
    )
    def _sparse(request: SparseRequest):
        return embed_sparse(request, settings())

    @app.post(
        "/rerank",
        operation_id="rerank",
        summary="Rerank texts against a query, best first",
        responses={200: {"description": "OK", "content": {JSON: {"model": list[RankedText]}}}},
    )
    def _rerank(request: RerankRequest):
        return rerank(request, settings())

    @app.post(
        "/embed_image",
        operation_id="embedImage",
        summary="Image embeddings (base64 or s3:// images), one normalised vector each",
        responses={200: {"description": "OK", "content": {JSON: {"model": list[list[float]]}}}},
    )
    def _embed_image(request: EmbedImageRequest):
        return embed_image(request, settings())

    @app.post(
        "/embed_multi",
        operation_id="embedMulti",
        summary="Late-interaction (ColBERT) token vectors: per text, one vector per token",
        responses={
            200: {"description": "OK", "content": {JSON: {"model": list[list[list[float]]]}}}
        },
    )
    def _embed_multi(request: EmbedMultiRequest):
        return embed_multi(request, settings())

    @app.post(
        "/tokenize", operation_id="tokenize", summary="Tokens of each input", responses=openapi_200
    )
    def _tokenize(request: TokenizeRequest):
        return tokenize(request, settings())

    @app.get(
        "/models",
        operation_id="listModels",
        summary="Baked models and which are loaded",
        responses=openapi_200,
    )
    def _models():
        return list_models(settings())

    @app.get(
        "/health", operation_id="health", summary="Liveness and model status", responses=openapi_200
    )
    def _health():
        return health(settings())

    @app.get("/openapi.json", include_in_schema=False)
    def _openapi():
        return Response(200, JSON, app.get_openapi_json_schema(title=TITLE, version=_version()))

    app.enable_swagger(path="/docs", title=TITLE, version=_version())

    @app.exception_handler(ValidationException)
    def _invalid(exc: ValidationException):
        return validation_response(exc, request_id())

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError):
        body = error_body(exc.status, exc.message, exc.param, exc.code, exc.details, request_id())
        return Response(exc.status, JSON, body)

    @app.exception_handler(ModelUnavailableError)
    def _unknown_model(exc: ModelUnavailableError):
        body = error_body(404, str(exc), "model", "model_not_found", None, request_id())
        return Response(404, JSON, body)

    @app.exception_handler(ModelNotConfiguredError)
    def _not_configured(exc: ModelNotConfiguredError):
        body = error_body(501, str(exc), None, "model_not_configured", None, request_id())
        return Response(501, JSON, body)

    @app.exception_handler(Exception)
    def _internal(exc: Exception):
        logger.exception("unhandled error")
        return Response(500, JSON, internal_error_body(request_id()))

    @app.not_found
    def _not_found(exc: Exception):
        event = app.current_event
        message = f"no route {event.http_method} {event.path}; see /docs"
        return Response(404, JSON, error_body(404, message, None, "no_route", None, request_id()))

    return app


def internal_error_body(request_id: str | None) -> str:
    return error_body(
        500, "internal error; it has been logged", None, "internal_error", None, request_id
    )


def _version() -> str:
    from kettle import __version__

    return __version__


_RESOLVERS: dict[str, ApiGatewayResolver] = {}


def resolver_for(event: dict[str, Any]) -> ApiGatewayResolver:
    """The HTTP API / function URL resolver for payload 2.0, the REST API one for 1.0."""
    if event.get("version") == "2.0" or "http" in (event.get("requestContext") or {}):
        key, cls = "http", APIGatewayHttpResolver
    elif "httpMethod" in event:
        key, cls = "rest", APIGatewayRestResolver
    else:
        raise ValueError("not an API Gateway or function URL event")
    if key not in _RESOLVERS:
        _RESOLVERS[key] = create_resolver(cls)
    return _RESOLVERS[key]


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and (
        "httpMethod" in event or "http" in (event.get("requestContext") or {})
    )


# ---- the entry ---------------------------------------------------------------------------------
def _plain_response(status: int, body: str) -> dict[str, Any]:
    """A response both payload versions accept (for errors found before a resolver runs)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON},
        "body": body,
        "isBase64Encoded": False,
    }


def _normalized_body(event: dict[str, Any], settings: Settings, request_id: str | None) -> Any:
    """The event with its body decoded (base64) and size-checked, and a JSON content type; or
    the error response that ends the request here."""
    body = event.get("body")
    if body is None:
        return event
    raw: bytes
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            message = "the body is marked isBase64Encoded but is not valid base64"
            return _plain_response(
                400, error_body(400, message, "body", "bad_base64", None, request_id)
            )
    else:
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if len(raw) > settings.max_request_bytes:
        message = f"the body is {len(raw)} bytes; at most {settings.max_request_bytes} (MAX_REQUEST_BYTES)"
        return _plain_response(
            413, error_body(413, message, "body", "request_too_large", None, request_id)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the body is not UTF-8 text (byte {exc.start})"
        return _plain_response(
            400, error_body(400, message, "body", "bad_encoding", None, request_id)
        )
    event = dict(event, body=text, isBase64Encoded=False)
    # Every route takes JSON: read the body as JSON whatever the client called it (curl -d sends
    # application/x-www-form-urlencoded).
    for key in ("headers", "multiValueHeaders"):
        headers = event.get(key)
        if isinstance(headers, dict):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            headers["content-type"] = JSON if key == "headers" else [JSON]
            event[key] = headers
    return event


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway (v1 or v2) or function URL event."""
    request_id = getattr(context, "aws_request_id", None)
    started = time.perf_counter()
    try:
        settings = Settings.from_env()
        app = resolver_for(event)
        prepared = _normalized_body(event, settings, request_id)
        if "statusCode" in prepared:
            return prepared
        return app.resolve(prepared, context)
    except Exception:
        logger.exception("unhandled error before routing")
        return _plain_response(500, internal_error_body(request_id))
    finally:
        metrics.add_metric(
            name="RequestLatency",
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )


__all__ = [
    "ApiError",
    "create_resolver",
    "handle",
    "is_api_event",
    "resolver_for",
]
