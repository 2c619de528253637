"""The API's errors: one exception class and one table from error code to HTTP status and type.

As text-embeddings-inference maps its ``ErrorType`` to a status in one place and infinity raises
one exception class, every refusal here is an ``ApiError(code, message, param)``; the status and the
OpenAI-style ``type`` come from ``ERRORS``, so a code means the same answer wherever it is raised.

The body takes the shape its route's clients parse (``SHAPES``, by route family): TEI's
``{"error": "...", "error_type": "Validation"}`` on TEI's routes, OpenAI's ``{"error": {"message",
"type", "param", "code"}}`` on ``/v1/*``, and kettle's own (OpenAI's with ``details``) elsewhere.
Only the body differs: the status is the table's in all three.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any, Literal

Shape = Literal["kettle", "openai", "tei"]

# code -> (HTTP status, OpenAI-style error type)
ERRORS: dict[str, tuple[int, str]] = {
    # the request's bytes and shape
    "json_invalid": (400, "invalid_request_error"),
    "json_too_deep": (400, "invalid_request_error"),
    "body_not_object": (400, "invalid_request_error"),
    "bad_base64": (400, "invalid_request_error"),
    "bad_encoding": (400, "invalid_request_error"),
    "bad_event": (400, "invalid_request_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "validation_error": (422, "invalid_request_error"),
    "empty_input": (422, "invalid_request_error"),  # an empty list or string (TEI's Empty)
    "invalid_text": (422, "invalid_request_error"),
    "invalid_dimensions": (422, "invalid_request_error"),
    "invalid_image": (422, "invalid_request_error"),
    "image_not_found": (422, "invalid_request_error"),
    "mode_not_available": (422, "invalid_request_error"),  # POST /search: the sink cannot
    "rerank_not_available": (422, "invalid_request_error"),  # ... or no cross-encoder
    # limits
    "request_too_large": (413, "request_too_large"),
    "too_many_texts": (413, "request_too_large"),
    "text_too_long": (413, "request_too_large"),
    "image_too_large": (413, "request_too_large"),
    "response_too_large": (413, "request_too_large"),
    # permissions and names
    "bucket_not_allowed": (403, "permission_error"),
    "image_access_denied": (403, "permission_error"),
    "model_not_found": (404, "not_found_error"),
    "no_route": (404, "not_found_error"),
    # the deployment, not the caller
    "internal_error": (500, "server_error"),
    "model_not_configured": (501, "not_implemented_error"),
    "model_not_supported": (501, "not_implemented_error"),  # e.g. /embed_all, a pooled graph
    "s3_error": (502, "server_error"),
    "search_backend_error": (502, "server_error"),
    "model_not_baked": (503, "service_unavailable_error"),
    "model_files_mismatch": (503, "service_unavailable_error"),
}


class ApiError(Exception):
    """A refusal the client can act on: a code from ``ERRORS``, a message that names the field
    and item, and ``param``, the field ("inputs[3]") it is about."""

    def __init__(
        self,
        code: str,
        message: str,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        if code not in ERRORS:
            raise KeyError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.details = details

    @property
    def status(self) -> int:
        return ERRORS[self.code][0]


# Route -> the error shape its clients parse; any other route answers kettle's.
SHAPES: dict[str, Shape] = {
    **dict.fromkeys(
        (
            "/embed",
            "/embed_all",
            "/embed_sparse",
            "/rerank",
            "/predict",
            "/similarity",
            "/tokenize",
            "/decode",
            "/info",
        ),
        "tei",
    ),
    "/v1/embeddings": "openai",
    "/v1/models": "openai",
}


def shape_for(path: Any) -> Shape:
    """The error shape of the route at ``path`` (a stage prefix such as /prod is allowed)."""
    if not isinstance(path, str):
        return "kettle"
    path = path.rstrip("/") or "/"
    for route in sorted(SHAPES, key=len, reverse=True):
        if path == route or path.endswith(route):
            return SHAPES[route]
    return "kettle"


def tei_error_type(code: str) -> str:
    """TEI's ``ErrorType`` for ``code``, read from the code's status as TEI maps its types to
    statuses (router/src/http/server.rs): Overloaded is 429, Unhealthy 503, Backend the other
    5xx; an empty input is Empty; every other refusal of the request is Validation."""
    status = ERRORS[code][0]
    if code == "empty_input":
        return "Empty"
    if status == 429:
        return "Overloaded"
    if status == 503:
        return "Unhealthy"
    if status >= 500:
        return "Backend"
    return "Validation"


def error_body(
    code: str,
    message: str,
    param: str | None = None,
    details: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
    shape: Shape = "kettle",
) -> str:
    """The error as ``shape``'s JSON (see the module's docstring). TEI's body keeps kettle's
    ``code`` and ``param`` beside its two fields, so the field at fault is named in all three."""
    body: dict[str, Any]
    if shape == "tei":
        body = {"error": message, "error_type": tei_error_type(code), "code": code, "param": param}
    else:
        error: dict[str, Any] = {
            "message": message,
            "type": ERRORS[code][1],
            "param": param,
            "code": code,
        }
        if details and shape == "kettle":
            error["details"] = details
        body = {"error": error}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body)


INTERNAL_MESSAGE = "internal error; it has been logged"


# An absolute POSIX path of two parts or more, not inside a word or a URL ("a/b", "http://h/x").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[\w.@+~-]+(?:/[\w.@+~-]*)+")


def redact_paths(text: str, dirs: Iterable[str]) -> str:
    """``text`` without the deployment's file system: a path inside one of ``dirs`` (the models
    directory, as configured and as resolved) relative to it, the directory itself "the models
    directory", any other absolute path "<path>". An answer names the model and the file in its
    bake; where the deployment keeps them is for its log."""
    roots = {d.rstrip("/") for d in dirs if d and d.startswith("/")}
    roots |= {os.path.realpath(d) for d in roots}
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root + "/", "").replace(root, "the models directory")
    return _ABSOLUTE_PATH.sub("<path>", text)


def status_of(code: str) -> int:
    return ERRORS[code][0]


__all__ = [
    "ERRORS",
    "INTERNAL_MESSAGE",
    "SHAPES",
    "ApiError",
    "Shape",
    "error_body",
    "redact_paths",
    "shape_for",
    "status_of",
    "tei_error_type",
]
