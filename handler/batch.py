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

``"multi": true`` in BatchInput adds late-interaction (ColBERT) token vectors of every text chunk,
``<key>.multi.npz`` beside the other outputs (format: handler/outputs.py), from the configured
KETTLE_LATE_INTERACTION_MODEL or ``"multi_model"``; without such a model every text item fails
with that reason. Image objects are embedded by the image model as in S3 ingestion (no
multi-vectors).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler import outputs
from handler.clients import client
from handler.ingest import (
    Embedders,
    IngestError,
    ObjectRef,
    TransientError,
    embed_object,
    transient_or_permanent,
)
from handler.observability import logger, metrics
from handler.settings import Settings


class BadBatchError(ValueError):
    """A batch event this function cannot read at all."""


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


def embed_inline(
    items: list[dict[str, Any]],
    output_bucket: str,
    output_prefix: str,
    settings: Settings,
    model_name: str | None,
    multi: bool = False,
    multi_model: str | None = None,
) -> dict[str, Any]:
    """Embed inline {"id", "text"} items into one output; skipped when it exists already."""
    batch_id = inline_batch_id(items)
    key = f"batches/{batch_id}"
    keys = outputs.OutputKeys.for_source(output_prefix, key)
    embedders = Embedders.load(settings, model_name, multi, multi_model)
    source = {"type": "inline", "key": key, "items": len(items), "sha256": batch_id}
    s3 = client("s3")
    where = ObjectRef(output_bucket, keys.manifest)
    try:
        existing = outputs.read_manifest(s3, output_bucket, keys.manifest)
    except Exception as exc:
        raise transient_or_permanent(exc, where) from exc
    if outputs.is_current(existing, embedders.identity(source)):
        return {"status": "skipped", "manifest": keys.manifest, "count": existing.get("count", 0)}
    docs = ((str(item.get("id", i)), item["text"]) for i, item in enumerate(items))
    done = embedders.embed(docs, key, source)
    try:
        manifest = outputs.write(s3, output_bucket, keys, done)
    except Exception as exc:
        raise transient_or_permanent(exc, where) from exc
    return {"status": "embedded", "manifest": keys.manifest, "count": manifest["count"]}


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
    multi = batch_input.get("multi", False)
    if not isinstance(multi, bool):
        raise BadBatchError(f"BatchInput.multi must be true or false, not {multi!r}")
    multi_model = batch_input.get("multi_model") or None
    if multi_model is not None and not isinstance(multi_model, str):
        raise BadBatchError(f"BatchInput.multi_model must be a model name, not {multi_model!r}")
    summary: dict[str, Any] = {"processed": 0, "skipped": 0, "failed": [], "outputs": []}
    inline: list[dict[str, Any]] = []
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
            outcome = embed_object(
                ref, output_bucket, output_prefix, settings, model_name, multi, multi_model
            )
        except (IngestError, TransientError) as exc:
            failure = {"key": ref.key, "reason": str(exc)}
            failure["error"] = getattr(exc, "code", "transient")
            summary["failed"].append(failure)
            logger.warning("batch item failed", extra=failure)
            continue
        if outcome.status == "skipped":
            summary["skipped"] += 1
        else:
            summary["processed"] += 1
            summary["outputs"].append(outcome.manifest_key)
    if inline:
        try:
            result = embed_inline(
                inline, output_bucket, output_prefix, settings, model_name, multi, multi_model
            )
        except (IngestError, TransientError) as exc:
            summary["failed"].append({"key": None, "reason": f"inline items: {exc}"})
        else:
            if result["status"] == "skipped":
                summary["skipped"] += len(inline)
            else:
                summary["processed"] += len(inline)
                summary["outputs"].append(result["manifest"])
    metrics.add_metric(name="ObjectsEmbedded", unit=MetricUnit.Count, value=summary["processed"])
    metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=summary["skipped"])
    metrics.add_metric(name="ObjectsFailed", unit=MetricUnit.Count, value=len(summary["failed"]))
    logger.info("batch done", extra={k: v for k, v in summary.items() if k != "outputs"})
    return summary


__all__ = ["BadBatchError", "handle", "embed_inline", "inline_batch_id"]
