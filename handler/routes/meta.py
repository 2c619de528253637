"""GET /models (what is baked, loaded and served), GET /health (can this instance serve its
dense model: baked, and its files matching the manifest's sha256), TEI's GET /info (the dense
model and the request limits) and OpenAI's GET /v1/models (the baked models)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.errors import redact_paths
from handler.models import MODELS, describe_baked, files_problem
from handler.observability import logger
from handler.routes.common import json_response, model_for, responses
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
    if problem is not None:
        logger.error("model files do not match the manifest", extra={"problem": problem})
        problem = redact_paths(problem, [settings.models_dir])
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


# ---- TEI's /info and OpenAI's /v1/models -------------------------------------------------------
# kettle's pooling names -> TEI's (router/src/lib.rs, EmbeddingModel.pooling)
_TEI_POOLING = {"mean": "mean", "cls": "cls", "last": "last_token", "splade": "splade"}
_DTYPES = {"QInt8": "int8", "QUInt8": "uint8"}  # ONNX Runtime's weight types; else float32


def _dtype(manifest: Any) -> str:
    weight_type = (manifest.quantization or {}).get("weight_type")
    return _DTYPES.get(weight_type, "float32")


@router.get(
    "/info",
    operation_id="info",
    summary="TEI's /info: the dense model (KETTLE_MODEL) and this deployment's request limits",
    responses=responses("Info", "model_not_baked", "model_files_mismatch", shape="tei"),
)
def info():
    from kettle import __version__, available_cpus

    settings = Settings.from_env()
    model = model_for("dense", settings)
    manifest = model.manifest
    source = manifest.source or {}
    pooling = _TEI_POOLING.get(manifest.pooling, manifest.pooling)
    return json_response(
        {
            "model_id": model.model_name,
            "model_sha": source.get("version") if source.get("type") == "hf" else None,
            "model_dtype": _dtype(manifest),
            "served_model_name": model.model_name,
            "model_type": {"embedding": {"pooling": pooling}},
            # One request at a time per Lambda instance: more run on more instances.
            "max_concurrent_requests": 1,
            "max_input_length": model.max_length,
            "max_batch_tokens": model.token_budget,
            "max_batch_requests": None,
            "max_client_batch_size": settings.max_texts,
            "auto_truncate": True,  # truncate defaults to true on every route
            "tokenization_workers": available_cpus(),
            "version": __version__,
            "sha": None,
            "docker_label": None,
        }
    )


@router.get(
    "/v1/models",
    operation_id="listOpenAIModels",
    summary="OpenAI's model list: every baked model (its kind beside OpenAI's fields)",
    responses={200: responses("OpenAIModelList")[200]},
)
def openai_models():
    settings = Settings.from_env()
    data = [
        {
            "id": d["name"],
            "object": "model",
            "created": d["created"],
            "owned_by": d["name"].split("/", 1)[0] if "/" in d["name"] else "kettle",
            "kind": d["kind"],
        }
        for d in describe_baked(settings)
    ]
    return json_response({"object": "list", "data": data})
