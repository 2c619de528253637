"""Step Functions Distributed Map batches: embed each item, return what happened.

The map's ItemReader lists an S3 prefix (s3:listObjectsV2) and its ItemBatcher hands this function

    {"Items": [{"Key": "...", "Size": 123, "Etag": "\\"...\\"", ...}, ...],
     "BatchInput": {"bucket": "...", "output_bucket": "...", "output_prefix": "...", "model": "..."}}

Each object item is embedded exactly as S3 ingestion does (same outputs, same idempotency, so an
object embedded by either path is not embedded again). Items may also be inline texts
{"id": "...", "text": "..."}: those of one batch are embedded together into one output under
``<output prefix>batches/<batch id>``, the id a hash of the items (a retried batch writes nothing
new). The summary, {"processed", "skipped", "failed": [{"key", "reason"}], ...}, is the map's
result for the batch (ResultWriter stores it).

Items go to the same sinks (VECTOR_SINK) and the same ledger as S3 ingestion. A transient failure
(throttling by S3 or a sink, a lost race) is tried again here with backoff; one still transient
after that makes the batch raise TransientBatchError once every other item is done, so the state
machine's Retry runs the batch again (what was synced is skipped then). Permanent failures are
reported per item with their code; a sink that refused a write says ``write_failed``.

``"multi": true`` in BatchInput adds late-interaction (ColBERT) token vectors of every text chunk,
``<key>.multi.npz`` beside the other outputs (format: handler/outputs.py), from the configured
KETTLE_LATE_INTERACTION_MODEL or ``"multi_model"``; without such a model every text item fails
with that reason. Image objects are embedded by the image model as in S3 ingestion (no
multi-vectors).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import Any

from handler.body import json_type
from handler.ingest import (
    Embedders,
    IngestError,
    ObjectEvent,
    ObjectRef,
    Outcome,
    Target,
    TransientError,
    sync,
    sync_source,
)
from handler.observability import count, logger
from handler.settings import Settings

ITEM_ATTEMPTS = 3  # tries per item inside one invocation before the batch is handed back
BACKOFF_BASE_S = 0.5


class BadBatchError(ValueError):
    """A batch event this function cannot read at all."""


class TransientBatchError(RuntimeError):
    """Some items met only transient failures: the state machine retries the batch."""


def _item_ref(item: dict[str, Any], bucket: str) -> ObjectRef:
    size = item.get("Size")
    return ObjectRef(
        bucket=item.get("Bucket") or bucket,
        key=item["Key"],
        version_id=item.get("VersionId"),
        etag=item.get("Etag") or item.get("ETag"),
        size=size if isinstance(size, int) else None,
    )


def inline_batch_id(items: list[dict[str, Any]]) -> str:
    """A stable id for a batch of inline items: the same items give the same output."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([str(item.get("id")), item["text"]], ensure_ascii=False).encode())
    return digest.hexdigest()[:20]


def embed_inline(items: list[dict[str, Any]], target: Target) -> Outcome:
    """Embed inline {"id", "text"} items as one source; skipped when it is synced already."""
    batch_id = inline_batch_id(items)
    key = f"batches/{batch_id}"
    embedders = Embedders.load(target.settings, target.model_name, target.multi, target.multi_model)
    source = {"type": "inline", "key": key, "items": len(items), "sha256": batch_id}
    docs = ((str(item.get("id", i)), item["text"]) for i, item in enumerate(items))
    return sync_source(embedders.embed(docs, key, source), target)


def with_retries(call: Any, sleep: Any = time.sleep) -> Any:
    """``call()``, tried again on TransientError (full-jitter backoff); the last one raises."""
    for attempt in range(ITEM_ATTEMPTS):
        try:
            return call()
        except TransientError:
            if attempt == ITEM_ATTEMPTS - 1:
                raise
            sleep(random.uniform(0, BACKOFF_BASE_S * 2**attempt))
    raise AssertionError("unreachable")


def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Embed one Distributed Map batch; a summary of what was processed, skipped and failed."""
    settings = Settings.from_env()
    items = event.get("Items")
    if not isinstance(items, list):
        raise BadBatchError('a batch event has "Items": a list')
    batch_input = event.get("BatchInput") or {}
    bucket = batch_input.get("bucket", "")
    output_bucket = batch_input.get("output_bucket") or settings.output_bucket or bucket
    output_prefix = batch_input.get("output_prefix") or settings.output_prefix
    model_name = batch_input.get("model") or None
    if model_name is not None and not isinstance(model_name, str):
        raise BadBatchError(f"BatchInput.model must be a model name, not {json_type(model_name)}")
    multi = batch_input.get("multi", False)
    if not isinstance(multi, bool):
        raise BadBatchError(f"BatchInput.multi must be true or false, not {multi!r}")
    multi_model = batch_input.get("multi_model") or None
    if multi_model is not None and not isinstance(multi_model, str):
        raise BadBatchError(
            f"BatchInput.multi_model must be a model name, not {json_type(multi_model)}"
        )
    target = Target.of(settings, output_bucket, output_prefix, model_name, multi, multi_model)
    summary: dict[str, Any] = {"processed": 0, "skipped": 0, "failed": [], "outputs": []}
    transient: list[str] = []
    inline: list[dict[str, Any]] = []

    def tally(outcome: Outcome, n: int = 1) -> None:
        if outcome.status in ("skipped", "stale"):
            summary["skipped"] += n
        else:
            summary["processed"] += n
            if outcome.manifest_key:
                summary["outputs"].append(outcome.manifest_key)

    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            inline.append(item)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            summary["failed"].append(
                {"key": None, "index": index, "reason": 'an item has a "Key" or a "text"'}
            )
            continue
        if item["Key"].endswith("/"):  # a "folder" placeholder in the listing
            summary["skipped"] += 1
            continue
        ref = _item_ref(item, bucket)
        if not ref.bucket:
            summary["failed"].append(
                {"key": ref.key, "reason": 'no bucket: BatchInput needs "bucket"'}
            )
            continue
        try:
            outcome = with_retries(lambda r=ref: sync(ObjectEvent("created", r), target))
        except IngestError as exc:
            failure = {"key": ref.key, "reason": exc.reason, "error": exc.code}
            summary["failed"].append(failure)
            logger.warning("batch item failed", extra=failure)
            continue
        except TransientError as exc:
            transient.append(f"{ref.key}: {exc}")
            continue
        tally(outcome)
    if inline:
        try:
            tally(with_retries(lambda: embed_inline(inline, target)), len(inline))
        except IngestError as exc:
            summary["failed"].append(
                {"key": None, "reason": f"inline items: {exc}", "error": exc.code}
            )
        except TransientError as exc:
            transient.append(f"inline items: {exc}")
    count(
        ObjectsEmbedded=summary["processed"],
        ObjectsSkipped=summary["skipped"],
        ObjectsFailed=len(summary["failed"]),
    )
    logger.info("batch done", extra={k: v for k, v in summary.items() if k != "outputs"})
    if transient:
        # Every other item is synced (or reported); the retried batch skips those.
        raise TransientBatchError(
            f"{len(transient)} item(s) to retry: " + "; ".join(transient)[:900]
        )
    return summary


__all__ = ["BadBatchError", "TransientBatchError", "embed_inline", "handle", "inline_batch_id"]
