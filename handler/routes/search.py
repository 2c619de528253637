"""POST /search as a Powertools Router (the logic and the request model: handler/search.py)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.routes.common import json_response, responses
from handler.search import SearchRequest, SearchResponse, search
from handler.settings import Settings

router = Router()


@router.post(
    "/search",
    operation_id="search",
    summary="Search the ingested documents: dense, sparse or hybrid, optionally reranked",
    responses=responses(
        SearchResponse, "mode_not_available", "rerank_not_available", "search_backend_error"
    ),
)
def _search(request: SearchRequest):
    return json_response(search(request, Settings.from_env()))
