"""What the routes share: the configured model of a kind, request limits, JSON responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from aws_lambda_powertools.event_handler import Response

from handler.errors import ERRORS, ApiError, Shape
from handler.models import MODELS, ModelUnavailableError
from handler.settings import Settings

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024 - 1024  # Lambda's 6 MB synchronous response, less headers
JSON = "application/json"
MIN_JSON_FLOAT_BYTES = 4  # the shortest float json_floats writes, with its comma: "0.0,"


def as_list(texts: str | list[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else texts


def check_count(texts: list[str], field: str, settings: Settings, noun: str = "texts") -> None:
    if len(texts) > settings.max_texts:
        raise ApiError(
            "too_many_texts",
            f"{field} has {len(texts)} {noun}; at most {settings.max_texts} per request (MAX_TEXTS)",
            field,
        )


def model_for(kind: str, settings: Settings, name: str | None = None) -> Any:
    """The loaded ``kind`` model (``name`` or the configured one). The deployment's own model
    missing is a 503, not the caller's fault; a model the caller named and is not baked, a 404."""
    try:
        return MODELS.get(kind, settings, name)
    except ModelUnavailableError as exc:
        if name is None:
            raise ApiError("model_not_baked", str(exc)) from None
        raise


@contextmanager
def named(field: str, model: Any = None) -> Iterator[None]:
    """kettle's input errors as ApiErrors naming the request's own field: kettle says
    ``texts[3]``, the request called it ``inputs[3]``. Its index is read, never its message."""
    from kettle.errors import ImageInputError, KettleInputError, TextTooLongError

    try:
        yield
    except KettleInputError as exc:
        where = field if exc.index is None else f"{field}[{exc.index}]"
        if isinstance(exc, TextTooLongError):
            name = getattr(model, "model_name", None) or "the model"
            raise ApiError(
                "text_too_long",
                f"{where} has {exc.tokens} tokens; {name} takes at most {exc.limit} "
                "(send truncate=true to cut it)",
                where,
            ) from None
        message = str(exc)
        if message.startswith(exc.where):
            message = where + message[len(exc.where) :]
        code = "invalid_image" if isinstance(exc, ImageInputError) else "invalid_text"
        raise ApiError(code, message, where) from None


@contextmanager
def output_options() -> Iterator[None]:
    """kettle's refusals of ``dimensions`` and ``precision`` as ApiErrors naming the field."""
    from kettle.output import CalibrationMissingError, InvalidDimensionsError

    try:
        yield
    except InvalidDimensionsError as exc:
        raise ApiError("invalid_dimensions", str(exc), "dimensions") from None
    except CalibrationMissingError as exc:  # the deployment's bake, not the caller
        raise ApiError("model_not_supported", str(exc), "precision") from None


def json_vectors(vectors: np.ndarray) -> list:
    """Vectors as JSON numbers: short floats, or kettle's quantized integers as they are."""
    if vectors.dtype == np.float32:
        return json_floats(vectors)
    return vectors.tolist()


def json_floats(matrix: np.ndarray) -> list:
    """float32 values as short JSON numbers (8 decimals): about half the bytes of float64 repr."""
    return np.round(matrix.astype(np.float64), 8).tolist()


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"))
    if len(body) > LAMBDA_RESPONSE_LIMIT:
        raise ApiError(
            "response_too_large",
            f"the response would be {len(body)} bytes, over Lambda's 6 MB limit: send fewer texts "
            "per request (or encoding_format=base64 on /v1/embeddings)",
        )
    return Response(status_code=status, content_type=JSON, body=body)


ERROR_MODELS: dict[Shape, str] = {
    "kettle": "ErrorResponse",
    "openai": "OpenAIErrorResponse",
    "tei": "TeiErrorResponse",
}


def responses(model: str | None, *codes: str, shape: Shape = "kettle") -> dict[int, dict[str, Any]]:
    """An OpenAPI ``responses=`` for a route: its 200 body and the 4xx/5xx answers its error
    codes can give, each with the error body of ``shape`` (the route's family, handler.errors.
    SHAPES; a test holds the two together). ``model`` is the 200 body's type as written
    in handler.schemas ("list[RankedText]"): resolved when the document is first built
    (resolve_responses), so importing the routes costs no pydantic."""
    out: dict[int, dict[str, Any]] = {200: {"description": "OK"}}
    if model is not None:
        out[200]["content"] = {JSON: _content(model)}
    statuses: dict[int, list[str]] = {}
    for code in ("json_invalid", "body_not_object", "validation_error", *codes, "internal_error"):
        statuses.setdefault(ERRORS[code][0], []).append(code)
    for status, names in sorted(statuses.items()):
        out[status] = {
            "description": "error codes: " + ", ".join(names),
            "content": {JSON: _content(ERROR_MODELS[shape])},
        }
    return out


_UNRESOLVED: list[dict[str, Any]] = []  # content entries whose "model" is still a type's text


def _content(model: str) -> dict[str, Any]:
    entry = {"model": model}
    _UNRESOLVED.append(entry)
    return entry


def resolve_responses(namespace: dict[str, Any]) -> None:
    """Turn every ``responses`` type text into its type, evaluated in ``namespace`` (handler.schemas'),
    as typing.get_type_hints evaluates string annotations: the texts are this package's own."""
    while _UNRESOLVED:
        entry = _UNRESOLVED.pop()
        entry["model"] = eval(entry["model"], dict(namespace))  # noqa: S307
