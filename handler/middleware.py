"""What every routed request shares, as Powertools middleware: the request body checked and
handed to the route as its ``request`` argument, the request id on the response (header
``X-Request-Id``, the Lambda request id the logs carry) and the RequestLatency metric."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from handler import body
from handler.observability import timed
from handler.validation import invalid_json, parse_request, validation_error


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


def request_model(func: Any) -> str | None:
    """The request model a route takes, by name: its ``request`` parameter's annotation (a string,
    as every route module has ``from __future__ import annotations``), or None."""
    annotation = getattr(func, "__annotations__", {}).get("request")
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", None)


def request_body(app: Any, next_middleware: NextMiddleware) -> Response:
    """Parse and check the body of a route that takes one (handler.validation) and pass it as the
    route's ``request``. Powertools' own validation (enable_validation) would import pydantic on
    every cold start; this is where its middleware hands routes their arguments, too: the
    ``_route_args`` the resolver calls the route with (Powertools 3.37)."""
    route = app.context.get("_route")
    model = request_model(route.func) if route is not None else None
    if model is not None:
        text = app.current_event.decoded_body
        if text is None or text == "":
            raise validation_error([{"type": "missing", "loc": ()}])
        try:
            data = body.parse(text)
        except json.JSONDecodeError as exc:
            raise invalid_json(exc) from None
        request = parse_request(model, data)
        app.append_context(_route_args={**app.context.get("_route_args", {}), "request": request})
    return next_middleware(app)


__all__ = ["request_body", "request_context", "request_id_of", "request_model"]
