"""POST /search as a Powertools Router (the request model: handler/schemas.py; the backends:
handler/search.py, imported on the route's first call, with the sinks it opens)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.routes.common import json_response, responses
from handler.settings import Settings

if TYPE_CHECKING:  # by name: handler.validation checks the body
    from handler.schemas import SearchRequest

router = Router()


@router.post(
    "/search",
    operation_id="search",
    summary="Search the ingested documents: dense, sparse or hybrid, optionally reranked",
    responses=responses(
        "SearchResponse", "mode_not_available", "rerank_not_available", "search_backend_error"
    ),
)
def _search(request: SearchRequest):
    from handler.search import search

    return json_response(search(request, Settings.from_env()))
