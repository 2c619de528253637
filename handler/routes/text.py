"""Text routes: /embed (TEI), /v1/embeddings (OpenAI), /embed_sparse, /rerank, /embed_multi,
/tokenize, and TEI's /similarity, /decode, /embed_all and /predict. Each checks its limits, asks
kettle for vectors and token counts, and answers JSON."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.errors import ApiError
from handler.models import resolve_name
from handler.observability import count, logger, timed
from handler.routes.common import (
    LAMBDA_RESPONSE_LIMIT,
    MIN_JSON_FLOAT_BYTES,
    as_list,
    check_count,
    json_floats,
    json_response,
    json_vectors,
    model_for,
    named,
    output_options,
    responses,
)
from handler.settings import Settings

if TYPE_CHECKING:  # the request models, by name: handler.validation checks the bodies
    from handler.schemas import (
        DecodeRequest,
        EmbedAllRequest,
        EmbedMultiRequest,
        EmbedRequest,
        OpenAIEmbeddingRequest,
        PredictRequest,
        RerankRequest,
        SimilarityRequest,
        SparseRequest,
        TokenizeRequest,
    )

router = Router()
_TEXT_ERRORS = (
    "too_many_texts",
    "empty_input",
    "invalid_text",
    "model_not_configured",
    "model_not_baked",
)
tei_responses = partial(responses, shape="tei")  # TEI's routes answer TEI's error body


def _kind(kind: str | None, prompt_name: str | None) -> str | None:
    """kettle's kind from ``kind`` or TEI's ``prompt_name`` (the same prefixes)."""
    if kind and prompt_name and kind != prompt_name:
        raise ApiError(
            "validation_error", f"kind is {kind} but prompt_name is {prompt_name}", "prompt_name"
        )
    return kind or prompt_name


def _prompt(model: Any, kind: str | None, prompt_name: str | None) -> tuple[str | None, str | None]:
    """(kind, named prompt) for /embed: a named prompt of the model's manifest wins; else
    query / passage mean its prefixes, as ``kind`` does; any other name is a 422 listing the
    model's prompts."""
    if prompt_name is None or prompt_name in model.prompts:
        return kind, prompt_name
    if prompt_name in ("query", "passage"):
        return _kind(kind, prompt_name), None
    known = ", ".join(sorted(model.prompts)) or "none"
    raise ApiError(
        "validation_error",
        f"{model.model_name} has no prompt named {prompt_name!r}; its prompts: {known} "
        "(or query / passage for its prefixes)",
        "prompt_name",
    )


def _log(operation: str, texts: int, tokens: int) -> None:
    count(Texts=texts, Tokens=tokens)
    logger.info(operation, extra={"texts": texts, "tokens": tokens})


def _dense_inputs(
    request: EmbedRequest | EmbedAllRequest, kind: str | None
) -> tuple[list[str], Any, str | None, str | None]:
    """TEI's checks that /embed and /embed_all share: (texts, the dense model, kind, named
    prompt) once the count, truncation_direction and prompt_name have passed."""
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("dense", settings)
    return (texts, model, *_prompt(model, kind, request.prompt_name))


@router.post(
    "/embed",
    operation_id="embed",
    summary="Dense embeddings (text-embeddings-inference shape)",
    responses=tei_responses(
        "list[list[float]]", *_TEXT_ERRORS, "text_too_long", "response_too_large"
    ),
)
def embed(request: EmbedRequest):
    texts, model, kind, prompt = _dense_inputs(request, request.kind)
    with timed("InferenceLatency"), named("inputs", model), output_options():
        embedded = model.embed_with_usage(
            texts,
            kind=kind,
            prompt_name=prompt,
            normalize=request.normalize,
            truncate=request.truncate,
            truncation_direction=request.truncation_direction,
            dimensions=request.dimensions,
            precision=request.precision,
        )
    _log("embed", len(texts), sum(embedded.token_counts))
    return json_response(json_vectors(embedded.vectors))


def _openai_input(value: str | list) -> tuple[list, bool, bool]:
    """(items, as token ids, one flat list of ids) of OpenAI's ``input``."""
    if isinstance(value, str):
        return [value], False, False
    if isinstance(value[0], int):
        return [value], True, True
    return value, isinstance(value[0], list), False


def _flat_ids_error(exc: ApiError) -> ApiError:
    """An error kettle named ``input[0]...`` for what was one flat list of ids: ``input...``."""
    if not exc.param or not exc.param.startswith("input[0]"):
        return exc
    where = "input" + exc.param[len("input[0]") :]
    return ApiError(exc.code, exc.message.replace(exc.param, where, 1), where, exc.details)


@router.post(
    "/v1/embeddings",
    operation_id="createEmbedding",
    summary="OpenAI-compatible embeddings",
    responses=responses(
        "OpenAIEmbeddingResponse",
        *_TEXT_ERRORS,
        "model_not_found",
        "invalid_dimensions",
        shape="openai",
    ),
)
def openai_embeddings(request: OpenAIEmbeddingRequest):
    settings = Settings.from_env()
    texts, as_ids, flat = _openai_input(request.input)
    check_count(texts, "input", settings)
    name = resolve_name(request.model, "dense", settings)
    model = model_for("dense", settings, name)
    output = {"dimensions": request.dimensions, "precision": request.precision}
    with timed("InferenceLatency"), output_options():
        try:
            with named("input", model):
                if as_ids:  # the model's own token ids, read as they are (embed_token_ids)
                    embedded = model.embed_token_ids(texts, normalize=True, **output)
                else:
                    embedded = model.embed_with_usage(texts, normalize=True, **output)
        except ApiError as exc:
            raise (_flat_ids_error(exc) if flat else exc) from None
    vectors = embedded.vectors
    tokens = sum(embedded.token_counts)
    _log("openai_embeddings", len(texts), tokens)
    if request.encoding_format == "base64":
        rows = vectors.astype("<f4") if vectors.dtype == np.float32 else vectors
        encoded: list = [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    else:
        encoded = json_vectors(vectors)
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
    summary="Sparse (SPLADE) embeddings, TEI's shape: per text, a list of {index, value}",
    responses=tei_responses("list[list[SparseValue]]", *_TEXT_ERRORS, "text_too_long"),
)
def embed_sparse(request: SparseRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("sparse", settings)
    with timed("InferenceLatency"), named("inputs", model):
        embedded = model.embed_with_usage(
            texts,
            kind=request.prompt_name,
            truncate=request.truncate,
            truncation_direction=request.truncation_direction,
        )
    result = [  # TEI's shape: per text, its non-zero weights as {"index", "value"}
        [
            {"index": i, "value": v}
            for i, v in zip(
                np.asarray(e.indices).tolist(),
                np.round(np.asarray(e.values, np.float64), 6).tolist(),
                strict=True,
            )
        ]
        for e in embedded.vectors
    ]
    _log("embed_sparse", len(texts), sum(embedded.token_counts))
    return json_response(result)


@contextmanager
def _pair_too_long(model, names) -> Iterator[None]:
    """kettle's TextTooLongError for a (query, text) pair as a 413; ``names(i)`` gives (what the
    message calls pair i, the field it names)."""
    from kettle.errors import TextTooLongError

    try:
        yield
    except TextTooLongError as exc:
        label, field = names(exc.index)
        raise ApiError(
            "text_too_long",
            f"{label} is {exc.tokens} tokens; {model.model_name} takes at most "
            f"{exc.limit} (send truncate=true to cut it)",
            field,
        ) from None


@router.post(
    "/rerank",
    operation_id="rerank",
    summary="Rerank texts against a query, best first",
    responses=tei_responses("list[RankedText]", *_TEXT_ERRORS, "text_too_long"),
)
def rerank(request: RerankRequest):
    settings = Settings.from_env()
    texts = request.texts
    check_count(texts, "texts", settings)
    model = model_for("rerank", settings)
    too_long = _pair_too_long(model, lambda i: (f"query + texts[{i}]", f"texts[{i}]"))
    with timed("InferenceLatency"), named("texts", model), too_long:
        ranked = model.rank_with_usage(
            request.query,
            texts,
            top_n=request.top_n,
            sigmoid=not request.raw_scores,
            return_documents=request.return_text,
            truncate=request.truncate,
            truncation_direction=request.truncation_direction,
        )
    _log("rerank", len(texts), sum(ranked.token_counts))
    out = []
    for result in ranked.results:
        item: dict[str, Any] = {"index": result.index, "score": round(float(result.score), 6)}
        if request.return_text:
            item["text"] = result.document
        out.append(item)
    return json_response(out)


@router.post(
    "/embed_multi",
    operation_id="embedMulti",
    summary="Late-interaction (ColBERT) token vectors: per text, one vector per token",
    responses=responses("list[list[list[float]]]", *_TEXT_ERRORS, "text_too_long"),
)
def embed_multi(request: EmbedMultiRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("late_interaction", settings)
    kind = "query" if request.kind == "query" else None
    with timed("InferenceLatency"), named("inputs", model):
        embedded = model.embed_with_usage(texts, kind=kind, truncate=request.truncate)
    _log("embed_multi", len(texts), sum(embedded.token_counts))
    return json_response([json_floats(r) for r in embedded.vectors])


def _check_token_vectors(tokens: int, width: int) -> None:
    """413 when ``tokens`` vectors of ``width`` numbers pass Lambda's response limit even at the
    fewest bytes a number takes ("0.0,"): refused before the body is built (160 texts of 256
    tokens would make a 179 MB one)."""
    least = tokens * width * MIN_JSON_FLOAT_BYTES
    if least > LAMBDA_RESPONSE_LIMIT:
        raise ApiError(
            "response_too_large",
            f"the response would hold {tokens} token vectors of {width} numbers, at least {least} "
            "bytes, over Lambda's 6 MB limit: send fewer or shorter texts per request",
        )


@router.post(
    "/embed_all",
    operation_id="embedAll",
    summary="TEI's /embed_all: the dense model's token vectors per text, before pooling",
    responses=tei_responses(
        "list[list[list[float]]]",
        *_TEXT_ERRORS,
        "text_too_long",
        "response_too_large",
        "model_not_supported",
    ),
)
def embed_all(request: EmbedAllRequest):
    texts, model, kind, prompt = _dense_inputs(request, None)
    with named("inputs", model):  # from the tokens alone (a prefix only adds): before inference
        _check_token_vectors(sum(model.token_counts(texts)), model.embedding_size)
    with timed("InferenceLatency"):
        try:
            with named("inputs", model):  # kettle's input errors -> ApiErrors naming the item
                embedded = model.embed_tokens_with_usage(
                    texts,
                    kind=kind,
                    prompt_name=prompt,
                    truncate=request.truncate,
                    truncation_direction=request.truncation_direction,
                )
        except ValueError as exc:  # what is left: a graph that pools inside has no tokens
            raise ApiError("model_not_supported", str(exc)) from None
    _log("embed_all", len(texts), sum(embedded.token_counts))
    _check_token_vectors(sum(embedded.token_counts), embedded.vectors[0].shape[1])
    return json_response([json_floats(m) for m in embedded.vectors])


def _predict_pairs(inputs: str | list, name: str) -> tuple[list[tuple[str, str]], bool]:
    """(pairs, batched) of TEI's /predict inputs. The cross-encoder scores pairs, so a lone
    text is refused by its place (TEI's classifiers also take one)."""
    batched = isinstance(inputs, list) and not isinstance(inputs[0], str)
    sequences = inputs if batched else [inputs]
    pairs = []
    for i, sequence in enumerate(sequences):
        if isinstance(sequence, str) or len(sequence) != 2:
            where = f"inputs[{i}]" if batched else "inputs"
            raise ApiError(
                "validation_error",
                f"{where} is one text; {name} is a cross-encoder and scores pairs [query, text]",
                where,
            )
        pairs.append((sequence[0], sequence[1]))
    return pairs, batched


@router.post(
    "/predict",
    operation_id="predict",
    summary="TEI's /predict with the cross-encoder: a score and label per [query, text] pair",
    responses=tei_responses(
        "list[Prediction] | list[list[Prediction]]", *_TEXT_ERRORS, "text_too_long"
    ),
)
def predict(request: PredictRequest):
    settings = Settings.from_env()
    model = model_for("rerank", settings)
    pairs, batched = _predict_pairs(request.inputs, model.model_name)
    check_count(pairs, "inputs", settings, "pairs")
    place = (lambda i: f"inputs[{i}]") if batched else (lambda i: "inputs")
    too_long = _pair_too_long(model, lambda i: (place(i), place(i)))
    with timed("InferenceLatency"), named("inputs", model), too_long:
        scored = model.rerank_pairs_with_usage(
            pairs,
            sigmoid=not request.raw_scores,
            truncate=request.truncate,
            truncation_direction=request.truncation_direction,
        )
    _log("predict", len(pairs), sum(scored.token_counts))
    label = model.label
    out = [[{"score": round(float(s), 6), "label": label}] for s in scored.vectors]
    return json_response(out if batched else out[0])


@router.post(
    "/similarity",
    operation_id="similarity",
    summary="TEI's /similarity: cosine similarity of source_sentence to each of sentences",
    responses=tei_responses("list[float]", *_TEXT_ERRORS, "text_too_long"),
)
def similarity(request: SimilarityRequest):
    settings = Settings.from_env()
    source, sentences = request.inputs.source_sentence, request.inputs.sentences
    check_count(sentences, "inputs.sentences", settings)
    model = model_for("dense", settings)
    texts = [source, *sentences]
    with timed("InferenceLatency"):
        try:
            with named("texts", model):
                embedded = model.embed_with_usage(
                    texts,
                    kind=request.prompt_name,
                    normalize=True,
                    truncate=request.truncate,
                    truncation_direction=request.truncation_direction,
                )
        except ApiError as exc:  # texts[0] is the source sentence, texts[i] sentences[i - 1]
            raise _similarity_error(exc) from None
    vectors = embedded.vectors
    scores = vectors[1:] @ vectors[0]
    _log("similarity", len(texts), sum(embedded.token_counts))
    return json_response(np.round(scores.astype(np.float64), 6).tolist())


def _similarity_error(exc: ApiError) -> ApiError:
    index = int(exc.param.split("[", 1)[1].rstrip("]")) if exc.param and "[" in exc.param else None
    if index is None:
        return exc
    where = "inputs.source_sentence" if index == 0 else f"inputs.sentences[{index - 1}]"
    message = exc.message.replace(exc.param, where, 1)
    return ApiError(exc.code, message, where, exc.details)


@router.post(
    "/decode",
    operation_id="decode",
    summary="TEI's /decode: token ids -> text, with the dense model's tokenizer",
    responses=tei_responses("list[str]", "model_not_configured", "model_not_baked"),
)
def decode(request: DecodeRequest):
    settings = Settings.from_env()
    rows = request.ids if request.ids and isinstance(request.ids[0], list) else [request.ids]
    check_count(rows, "ids", settings, "id lists")
    model = model_for("dense", settings)
    tokenizer = model.tokenizer.tokenizer
    vocab = tokenizer.get_vocab_size()
    wrapped = rows is not request.ids  # a flat list of ids: one text
    for i, row in enumerate(rows):
        for j, token in enumerate(row):
            if not 0 <= token < vocab:
                where = f"ids[{j}]" if wrapped else f"ids[{i}][{j}]"
                raise ApiError(
                    "validation_error",
                    f"{where} is {token}; {model.model_name}'s ids are 0..{vocab - 1}",
                    where,
                )
    texts = tokenizer.decode_batch(rows, skip_special_tokens=request.skip_special_tokens)
    return json_response(list(texts))


@router.post(
    "/tokenize",
    operation_id="tokenize",
    summary="Tokens of each input",
    responses=tei_responses("list[list[Token]]", *_TEXT_ERRORS),
)
def tokenize(request: TokenizeRequest):
    settings = Settings.from_env()
    texts = as_list(request.inputs)
    check_count(texts, "inputs", settings)
    model = model_for("dense", settings)
    with named("inputs", model):  # each text cut to what max_length keeps before it is read
        encodings = model.tokenizer.encode(texts, add_special_tokens=request.add_special_tokens)
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
