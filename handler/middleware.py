"""What every routed request shares, as Powertools middleware: the request id on the response
(header ``X-Request-Id``, the Lambda request id the logs carry) and the RequestLatency metric."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from handler.observability import timed


def request_id_of(app: Any) -> str | None:
    """The invocation's request id (the context's aws_request_id), when there is a context."""
    return getattr(getattr(app, "lambda_context", None), "aws_request_id", None)


def request_context(app: Any, next_middleware: NextMiddleware) -> Response:
    """Time the route and stamp its response with the request id."""
    with timed("RequestLatency"):
        response = next_middleware(app)
    request_id = request_id_of(app)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


__all__ = ["request_context", "request_id_of"]
