"""GET /models (what is baked, loaded and served) and GET /health (can this instance serve its
dense model: baked, and its files matching the manifest's sha256)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.models import MODELS, describe_baked, files_problem
from handler.routes.common import json_response, responses
from handler.settings import Settings

router = Router()


@router.get(
    "/models",
    operation_id="listModels",
    summary="Baked models and which are loaded",
    responses={200: responses("ModelList")[200]},
)
def list_models():
    settings = Settings.from_env()
    configured = {kind: name or None for kind, name in settings.models.items()}
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


@router.get(
    "/health",
    operation_id="health",
    summary="Liveness and model status: 503 when the dense model is not baked or its files differ",
    responses={
        200: responses("Health")[200],
        503: {
            "description": "the model cannot be served",
            "content": responses("Health")[200]["content"],
        },
    },
)
def health():
    settings = Settings.from_env()
    baked = settings.model in {d["name"] for d in describe_baked(settings)}
    problem = files_problem(settings.model, settings) if baked else None
    ok = baked and problem is None
    return json_response(
        {
            "status": "ok" if ok else "unavailable",
            "model": settings.model,
            "baked": baked,
            "files_ok": (problem is None) if baked else None,
            "problem": problem,
            "loaded": MODELS.loaded(),
        },
        200 if ok else 503,
    )
