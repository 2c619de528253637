"""Text routes: /embed (TEI), /v1/embeddings (OpenAI), /embed_sparse, /rerank, /embed_multi,
/tokenize. Each checks its limits, asks kettle for vectors and token counts, and answers JSON."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.errors import ApiError
from handler.models import resolve_name
from handler.observability import count, logger, timed
from handler.routes.common import (
    as_list,
    check_count,
    json_floats,
    json_response,
    model_for,
    responses,
)
from handler.schemas import (
    EmbedMultiRequest,
    EmbedRequest,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    RankedText,
    RerankRequest,
    SparseRequest,
    SparseVector,
    Token,
    TokenizeRequest,
)
from handler.settings import Settings

router = Router()
_TEXT_ERRORS = ("too_many_texts", "invalid_text", "model_not_configured", "model_not_baked")


def _check_lengths(model: Any, texts: list[str], field: str) -> None:
    """truncate=false: a text past the model's max_length is an error naming it."""
    limit = model.max_length
    for index, tokens in enumerate(model.token_counts(texts, truncate=False)):
        if tokens > limit:
            raise ApiError(
                "text_too_long",
                f"{field}[{index}] has {tokens} tokens; {model.model_name} takes at most {limit} "
                "(send truncate=true to cut it)",
                f"{field}[{index}]",
            )


def _dense_vectors(model: Any, texts: list[str], normalize: bool, prefix: str = "") -> np.ndarray:
    from kettle.pooling import normalize as unit
    from kettle.pooling import pool

    if prefix:
        texts = [prefix + t for t in texts]
    if normalize == model.manifest.normalize:
        rows = list(model.embed(texts))
    else:

        def last_step(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
            vectors = pool(model.manifest.pooling, hidden, mask).astype(np.float32, copy=False)
            return unit(vectors) if normalize else vectors

        rows = list(model._stream(texts, 256, last_step))
    return np.stack(rows).astype(np.float32, copy=False)


def _log(operation: str, texts: int, tokens: int) -> None:
    count(Texts=texts, Tokens=tokens)
    logger.info(operation, extra={"texts": texts, "tokens": tokens})


@router.post(
    "/embed",
    operation_id="embed",
    summary="Dense embeddings (text-embeddings-inference shape)",
    responses=responses(list[list[float]], *_TEXT_ERRORS, "text_too_long", "response_too_large"),
)
def embed(request: EmbedRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("dense", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    prefix = {"query": model.query_prefix, "passage": model.passage_prefix}.get(request.kind or "")
    with timed("InferenceLatency"):
        vectors = _dense_vectors(model, texts, request.normalize, prefix or "")
    _log("embed", len(texts), model.token_count(texts))
    return json_response(json_floats(vectors))


@router.post(
    "/v1/embeddings",
    operation_id="createEmbedding",
    summary="OpenAI-compatible embeddings",
    responses=responses(
        OpenAIEmbeddingResponse, *_TEXT_ERRORS, "model_not_found", "invalid_dimensions"
    ),
)
def openai_embeddings(request: OpenAIEmbeddingRequest):
    settings = Settings.from_env()
    texts = as_list(request.input)
    check_count(texts, "input", settings)
    name = resolve_name(request.model, "dense", settings)
    model = model_for("dense", settings, name)
    dim = model.embedding_size
    if request.dimensions is not None and request.dimensions > dim:
        raise ApiError(
            "invalid_dimensions",
            f"dimensions is {request.dimensions}; {name} makes {dim}-dimensional vectors",
            "dimensions",
        )
    with timed("InferenceLatency"):
        vectors = _dense_vectors(model, texts, True)
    if request.dimensions is not None and request.dimensions < dim:
        from kettle.pooling import normalize

        vectors = normalize(vectors[:, : request.dimensions])
    tokens = model.token_count(texts)
    _log("openai_embeddings", len(texts), tokens)
    if request.encoding_format == "base64":
        encoded: list = [
            base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors
        ]
    else:
        encoded = json_floats(vectors)
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)
            ],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@router.post(
    "/embed_sparse",
    operation_id="embedSparse",
    summary="Sparse (SPLADE) embeddings",
    responses=responses(list[SparseVector], *_TEXT_ERRORS, "text_too_long"),
)
def embed_sparse(request: SparseRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("sparse", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    with timed("InferenceLatency"):
        result = [
            {
                "indices": np.asarray(e.indices).tolist(),
                "values": np.round(np.asarray(e.values, np.float64), 6).tolist(),
            }
            for e in model.embed(texts)
        ]
    _log("embed_sparse", len(texts), model.token_count(texts))
    return json_response(result)


@router.post(
    "/rerank",
    operation_id="rerank",
    summary="Rerank texts against a query, best first",
    responses=responses(list[RankedText], *_TEXT_ERRORS, "text_too_long"),
)
def rerank(request: RerankRequest):
    settings = Settings.from_env()
    texts = request.texts
    check_count(texts, "texts", settings)
    model = model_for("rerank", settings)
    if not request.truncate:
        limit = model.max_length
        query_tokens = model.token_counts([request.query], truncate=False)[0]
        for index, tokens in enumerate(model.token_counts(texts, truncate=False)):
            # [CLS] query [SEP] text [SEP]: the two per-text counts share one [CLS].
            if query_tokens + tokens - 1 > limit:
                raise ApiError(
                    "text_too_long",
                    f"query + texts[{index}] is {query_tokens + tokens - 1} tokens; "
                    f"{model.model_name} takes at most {limit} (send truncate=true to cut it)",
                    f"texts[{index}]",
                )
    with timed("InferenceLatency"):
        scores = model.rerank(
            request.query, texts, top_n=request.top_n, sigmoid=not request.raw_scores
        )
        ranked = ranked_results(scores, request.top_n)
    tokens = model.token_count([request.query]) * len(texts) + model.token_count(texts)
    _log("rerank", len(texts), tokens)
    out = []
    for index, score in ranked:
        item: dict[str, Any] = {"index": index, "score": round(float(score), 6)}
        if request.return_text:
            item["text"] = texts[index]
        out.append(item)
    return json_response(out)


def ranked_results(result: Any, top_n: int | None) -> list[tuple[int, float]]:
    """(index, score) best first from what TextCrossEncoder.rerank returns: scores in input order,
    or ranked items with index and score (attributes, mapping keys or pairs)."""
    items = list(result)
    pairs: list[tuple[int, float]] = []
    for position, item in enumerate(items):
        if isinstance(item, (int, float, np.number)):
            pairs.append((position, float(item)))
        elif isinstance(item, dict):
            pairs.append((int(item["index"]), float(item["score"])))
        elif hasattr(item, "index") and hasattr(item, "score"):
            pairs.append((int(item.index), float(item.score)))
        else:
            index, score = item
            pairs.append((int(index), float(score)))
    pairs.sort(key=lambda p: -p[1])
    return pairs[:top_n] if top_n else pairs


@router.post(
    "/embed_multi",
    operation_id="embedMulti",
    summary="Late-interaction (ColBERT) token vectors: per text, one vector per token",
    responses=responses(list[list[list[float]]], *_TEXT_ERRORS, "text_too_long"),
)
def embed_multi(request: EmbedMultiRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("late_interaction", settings)
    if not request.truncate:
        _check_lengths(model, texts, "inputs")
    embed = model.query_embed if request.kind == "query" else model.embed
    with timed("InferenceLatency"):
        rows = [json_floats(r) for r in embed(texts)]
    _log("embed_multi", len(texts), model.token_count(texts))
    return json_response(rows)


@router.post(
    "/tokenize",
    operation_id="tokenize",
    summary="Tokens of each input",
    responses=responses(list[list[Token]], *_TEXT_ERRORS),
)
def tokenize(request: TokenizeRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("dense", settings)
    tokenizer = model.tokenizer.tokenizer
    encodings = tokenizer.encode_batch(texts, add_special_tokens=request.add_special_tokens)
    result = [
        [
            {"id": i, "text": t, "special": bool(s), "start": a, "stop": b}
            for i, t, s, (a, b) in zip(
                e.ids, e.tokens, e.special_tokens_mask, e.offsets, strict=True
            )
        ]
        for e in encodings
    ]
    return json_response(result)
