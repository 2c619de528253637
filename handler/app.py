"""Lambda entry points: one per event source, and a dispatcher for a single-function deployment.

    handler.app.api_handler       API Gateway HTTP API (2.0), REST API (1.0), function URLs
    handler.app.s3_handler        S3 ObjectCreated / ObjectRemoved notifications, through SQS (direct,
                                  SNS- or EventBridge-wrapped) or direct -> the vector sinks
    handler.app.batch_handler     Step Functions Distributed Map item batches
    handler.app.dispatch_handler  any of the above, routed by the event's shape

Importing this module loads the configured dense model and imports only the API's path: the
model's session builds in a background thread while the routes import (handler.preload), and the
import waits for it, so init ends with the model loaded. The ingestion and batch modules (boto3,
Powertools' batch utilities) load with their first event, the X-Ray SDK only when tracing is on
(handler.observability.traced); other models load on first use, and every model stays for warm
invocations (handler.models.MODELS). Under SnapStart the ingestion modules load during init too,
so the snapshot holds them, and a restore hook re-seeds the random generators every restored copy
would share.
"""

from __future__ import annotations

import os
import random
from typing import Any

# isort: split
# The dense model starts loading first; its session builds in a thread while Powertools and the
# routes import.
from handler import preload  # noqa: F401 - imported for that start

# isort: split
import numpy as np
from aws_lambda_powertools.logging import correlation_paths

from handler import api
from handler.models import MODELS
from handler.observability import logger, metrics, traced
from handler.settings import Settings


class UnknownEventError(ValueError):
    """An event whose shape no entry point handles."""


def reseed_after_restore() -> None:
    """Give this restored copy its own random state: every copy of a snapshot starts with the
    same one (random, numpy's legacy global generator)."""
    random.seed(os.urandom(32))
    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    logger.info("random generators re-seeded after the snapshot restore")


def _snapstart_init() -> bool:
    """Under SnapStart: the dense model loaded before the snapshot (joining handler.preload's
    load; a model that cannot load fails the init here, as it always did), and the restore hook
    registered (snapshot_restore_py ships with Lambda's Python runtimes and awslambdaric). Only a
    SnapStart init is ever restored, so nothing else registers it."""
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "snap-start":
        return False
    from snapshot_restore_py import register_after_restore

    register_after_restore(reseed_after_restore)
    settings = Settings.from_env()
    MODELS.get("dense", settings)
    from handler import batch, ingest  # noqa: F401 - into the snapshot, off the first event's path

    logger.info("model loaded during init for the snapshot", extra={"model": settings.model})
    return True


SNAPSTART_INIT = _snapstart_init()
MODELS.wait()  # init ends with the dense model loaded (or its error left to the first request)


def route(event: Any) -> str:
    """Which entry point an event is for: "api", "s3" or "batch"."""
    if api.is_api_event(event):
        return "api"
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records:
            sources = {r.get("eventSource") for r in records if isinstance(r, dict)}
            if sources and sources <= {"aws:s3", "aws:sqs"}:
                return "s3"
        if isinstance(event.get("Items"), list):
            return "batch"
    keys = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
    raise UnknownEventError(
        f"unrecognized event (keys: {keys}); expected an API Gateway / function URL request, "
        "S3 or SQS Records, or a Step Functions batch with Items"
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@traced
@metrics.log_metrics(capture_cold_start_metric=True)
def api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway HTTP API / REST API / function URL request -> response."""
    return api.handle(event, context)


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics(capture_cold_start_metric=True)
def s3_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 ObjectCreated / ObjectRemoved records (direct, or inside SQS messages) -> the sinks."""
    from handler import ingest  # boto3 and the ingestion rooms: not on the API's cold path

    return ingest.handle(event, context)


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics(capture_cold_start_metric=True)
def batch_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Distributed Map batch {"Items": [...], "BatchInput": {...}} -> summary."""
    from handler import batch

    return batch.handle(event, context)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@traced
@metrics.log_metrics(capture_cold_start_metric=True)
def dispatch_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Any supported event, routed by its shape (one function for every source)."""
    kind = route(event)
    logger.append_keys(entry=kind)
    if kind == "api":
        return api.handle(event, context)
    if kind == "s3":
        from handler import ingest

        return ingest.handle(event, context)
    from handler import batch

    return batch.handle(event, context)
