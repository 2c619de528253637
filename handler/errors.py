"""The API's errors: one exception class and one table from error code to HTTP status and type.

As text-embeddings-inference maps its ``ErrorType`` to a status in one place and infinity raises
one exception class, every refusal here is an ``ApiError(code, message, param)``; the status and the
OpenAI-style ``type`` come from ``ERRORS``, so a code means the same answer wherever it is raised.
"""

from __future__ import annotations

import json
from typing import Any

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


def error_body(
    code: str,
    message: str,
    param: str | None = None,
    details: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> str:
    """The one error shape (OpenAI's, so its SDK shows the message): {"error": {...}}."""
    error: dict[str, Any] = {
        "message": message,
        "type": ERRORS[code][1],
        "param": param,
        "code": code,
    }
    if details:
        error["details"] = details
    body: dict[str, Any] = {"error": error}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body)


INTERNAL_MESSAGE = "internal error; it has been logged"


def status_of(code: str) -> int:
    return ERRORS[code][0]


__all__ = ["ERRORS", "INTERNAL_MESSAGE", "ApiError", "error_body", "status_of"]
