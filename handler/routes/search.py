"""POST /search as a Powertools Router (the logic: handler/search.py)."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler.api_gateway import Response, Router

from handler.search import SearchError, SearchRequest, SearchResponse, search
from handler.settings import Settings

router = Router()
JSON = "application/json"


@router.post(
    "/search",
    operation_id="search",
    summary="Search the ingested documents: dense, sparse or hybrid, optionally reranked",
    responses={
        200: {"description": "OK", "content": {JSON: {"model": SearchResponse}}},
        422: {
            "description": "Invalid request, or a mode the configured sink / models cannot serve"
        },
    },
)
def _search(request: SearchRequest):
    return Response(200, JSON, json.dumps(search(request, Settings.from_env()), ensure_ascii=False))


@router.exception_handler(SearchError)
def _search_error(exc: SearchError):
    from handler.api import error_body

    context = getattr(router, "lambda_context", None)
    request_id = getattr(context, "aws_request_id", None)
    body = error_body(exc.status, exc.message, exc.param, exc.code, None, request_id)
    return Response(exc.status, JSON, body)
