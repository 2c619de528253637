"""The HTTP API's entry: module-scope resolvers with every router included, one error table
answered as JSON, and the transport checks (body bytes, event shape) before a route runs.

One set of routes serves API Gateway HTTP API (payload 2.0, and Lambda function URLs) and REST API
(payload 1.0) events: ``handle`` picks the resolver by the event's shape. Every error is JSON that
names the field and the item at fault (handler.errors); a 500 says only that it failed and the
request id.

    handler/routes/text.py    /embed /v1/embeddings /embed_sparse /rerank /embed_multi /tokenize
                              /similarity /decode /embed_all /predict (TEI)
    handler/routes/image.py   /embed_image
    handler/routes/meta.py    /models /health /info (TEI) /v1/models (OpenAI)
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from handler import body, openapi
from handler.body import json_type
from handler.errors import INTERNAL_MESSAGE, ApiError, error_body, redact_paths, shape_for
from handler.middleware import request_body, request_context, request_id_of
from handler.models import ModelFilesError, ModelNotConfiguredError, ModelUnavailableError
from handler.observability import count, logger
from handler.routes import image, meta, search, text
from handler.routes.common import JSON
from handler.settings import Settings

ROUTERS = (text.router, image.router, meta.router, search.router)


# ---- errors -> the shape of the route's family (handler.errors) ---------------------------------
def public_message(exc: ApiError) -> str:
    """The message a client may read: a server error's (and an unknown model's, which lists the
    models directory) without the deployment's paths. What it hid goes to the log, with the
    request id the answer carries."""
    if exc.status < 500 and exc.code != "model_not_found":
        return exc.message
    message = redact_paths(exc.message, [Settings.from_env().models_dir])
    if message != exc.message:
        logger.error(exc.code, extra={"detail": exc.message})
    return message


def _path_of(event: Any) -> Any:
    """The request's path from a raw event of either payload version (None if it has none)."""
    if not isinstance(event, dict):
        return None
    return event.get("rawPath") or event.get("path")


def error_response(exc: ApiError, request_id: str | None, path: str | None = None) -> Response:
    count(**{"ClientErrors" if exc.status < 500 else "ServerErrors": 1})
    shape = shape_for(path)
    payload = error_body(exc.code, public_message(exc), exc.param, exc.details, request_id, shape)
    headers = {"X-Request-Id": request_id} if request_id else None
    return Response(exc.status, JSON, payload, headers=headers)


# ---- the resolvers -------------------------------------------------------------------------------
def _build(cls: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    """A resolver of ``cls`` with every router, the middleware and the error handlers."""
    # No enable_validation: it imports pydantic and Powertools' OpenAPI models on every cold
    # start. request_body checks the body instead (handler.validation) and hands it to the route;
    # the OpenAPI document still comes from the routes' signatures (handler.openapi).
    app = cls(json_body_deserializer=body.parse)
    for router in ROUTERS:
        app.include_router(router)
    app.use(middlewares=[request_context, request_body])

    @app.get("/openapi.json", include_in_schema=False)
    def _openapi():
        return Response(200, JSON, openapi.document(app))

    @app.get("/docs", include_in_schema=False)
    def _docs():
        return Response(200, "text/html", openapi.swagger_html(app))

    def answer(exc: ApiError) -> Response:
        return error_response(exc, request_id_of(app), app.current_event.path)

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError):
        return answer(exc)

    @app.exception_handler(ModelUnavailableError)
    def _unknown_model(exc: ModelUnavailableError):
        return answer(ApiError(exc.code, str(exc), "model"))

    @app.exception_handler(ModelNotConfiguredError)
    def _not_configured(exc: ModelNotConfiguredError):
        return answer(ApiError(exc.code, str(exc)))

    @app.exception_handler(ModelFilesError)
    def _files(exc: ModelFilesError):
        logger.error("model files do not match the manifest", extra={"problem": str(exc)})
        return answer(ApiError(exc.code, str(exc)))

    @app.exception_handler(Exception)
    def _internal(exc: Exception):
        logger.exception("unhandled error")
        return answer(ApiError("internal_error", INTERNAL_MESSAGE))

    @app.not_found
    def _not_found(exc: Exception):
        event = app.current_event
        message = f"no route {event.http_method} {event.path}; see /docs"
        return answer(ApiError("no_route", message))

    return app


http_app = _build(APIGatewayHttpResolver)  # payload 2.0: HTTP API, function URLs
rest_app = _build(APIGatewayRestResolver)  # payload 1.0: REST API


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and (
        "httpMethod" in event or "http" in (event.get("requestContext") or {})
    )


def resolver_for(event: dict[str, Any]) -> ApiGatewayResolver:
    """The HTTP API / function URL resolver for payload 2.0, the REST API one for 1.0."""
    context = event.get("requestContext")
    if event.get("version") == "2.0" or (isinstance(context, dict) and "http" in context):
        return http_app
    if "httpMethod" in event:
        return rest_app
    raise ApiError("bad_event", "not an API Gateway or function URL event", "event")


# ---- the entry -----------------------------------------------------------------------------------
def _plain_response(exc: ApiError, request_id: str | None, event: Any = None) -> dict[str, Any]:
    """A response both payload versions accept (for errors found before a resolver runs)."""
    count(**{"ClientErrors" if exc.status < 500 else "ServerErrors": 1})
    shape = shape_for(_path_of(event))
    headers = {"Content-Type": JSON}
    if request_id:
        headers["X-Request-Id"] = request_id
    return {
        "statusCode": exc.status,
        "headers": headers,
        "body": error_body(
            exc.code, public_message(exc), exc.param, exc.details, request_id, shape
        ),
        "isBase64Encoded": False,
    }


def _string(event: dict[str, Any], *path: str, required: bool = True) -> None:
    value: Any = event
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None and not required:
        return
    if not isinstance(value, str):
        where = ".".join(path)
        what = "missing" if value is None else f"{json_type(value)}, not a string"
        raise ApiError("bad_event", f"the event's {where} is {what}", where)


def _mapping(event: dict[str, Any], key: str, values: type) -> None:
    value = event.get(key)
    if value is None:
        return
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, values) for k, v in value.items()
    )
    if not ok:
        raise ApiError("bad_event", f"the event's {key} is not an object of strings", key)


def check_event(event: dict[str, Any]) -> None:
    """The fields Powertools reads, with the types it assumes: a 400 naming the field instead of
    a KeyError inside the resolver."""
    context = event.get("requestContext")
    if context is not None and not isinstance(context, dict):
        what = json_type(context)
        raise ApiError(
            "bad_event", f"the event's requestContext is {what}, not an object", "requestContext"
        )
    if event.get("version") == "2.0" or "http" in (context or {}):
        _string(event, "requestContext", "http", "method")
        _string(event, "rawPath")
        _string(event, "requestContext", "http", "path", required=False)
        _string(event, "rawQueryString", required=False)
        cookies = event.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise ApiError("bad_event", "the event's cookies is not a list of strings", "cookies")
    else:
        _string(event, "httpMethod")
        _string(event, "path")
    _mapping(event, "multiValueHeaders", list)  # Powertools' validation reads these for both
    _mapping(event, "multiValueQueryStringParameters", list)
    _mapping(event, "headers", str)
    _mapping(event, "queryStringParameters", str)
    _mapping(event, "pathParameters", str)


def _prepared(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The event with its body decoded and size-checked and a JSON content type."""
    decoded = body.decode(event, settings.max_request_bytes)
    if decoded is None:
        return event
    event = dict(event, body=decoded, isBase64Encoded=False)
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
    try:
        if not isinstance(event, dict):
            raise ApiError("bad_event", f"the event is {json_type(event)}, not an object", "event")
        app = resolver_for(event)
        check_event(event)
        return app.resolve(_prepared(event, Settings.from_env()), context)
    except ApiError as exc:
        return _plain_response(exc, request_id, event)
    except Exception:
        logger.exception("unhandled error before routing")
        return _plain_response(ApiError("internal_error", INTERNAL_MESSAGE), request_id, event)


__all__ = ["ApiError", "handle", "http_app", "is_api_event", "resolver_for", "rest_app"]
