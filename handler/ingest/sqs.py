"""The entry points: S3 notifications through SQS (Powertools' BatchProcessor), or direct.

Through SQS, each message is one record of the batch: a transient failure (throttling, a dropped
connection, a lost race) fails only that record, so SQS delivers it again (batchItemFailures); a
permanent one is recorded in the dead-letter queue with its code and reason, and the message is
done. A direct S3 event raises at the end when any record was transient, so Lambda's asynchronous
retries take over.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from handler.clients import client
from handler.ingest.errors import IngestError, TransientError
from handler.ingest.events import ObjectEvent, object_events
from handler.ingest.pipeline import Outcome, Target, sync
from handler.observability import count, logger
from handler.settings import Settings

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def send_to_dlq(settings: Settings, reason: str, code: str, source: str, **details: Any) -> None:
    """Record a failure in the dead-letter queue; TransientError when it cannot be recorded."""
    message = {"reason": reason, "error": code, "source": source, **details}
    message["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if not settings.dlq_url:
        raise TransientError(f"no DLQ_URL to record the failure in: {reason}")
    try:
        client("sqs").send_message(
            QueueUrl=settings.dlq_url,
            MessageBody=json.dumps(message, ensure_ascii=False, default=str),
            MessageAttributes={"error": {"DataType": "String", "StringValue": code}},
        )
    except Exception as exc:
        raise TransientError(f"could not send to the dead-letter queue: {exc}") from exc
    count(ObjectsFailed=1)
    logger.warning("sent to the dead-letter queue", extra=message)


def process(event: ObjectEvent, settings: Settings, source: str, **details: Any) -> Outcome:
    """One object event: synced, skipped, stale, deleted or ignored; or recorded in the DLQ.
    TransientError propagates."""
    ref = event.ref
    output_bucket = settings.output_bucket or ref.bucket
    if settings.input_prefix and not ref.key.startswith(settings.input_prefix):
        return Outcome("ignored", ref.key, reason=f"not under {settings.input_prefix}")
    if output_bucket == ref.bucket and ref.key.startswith(settings.output_prefix):
        return Outcome("ignored", ref.key, reason="an output of this function")
    described = {**ref.describe(), "action": event.action, "sequencer": event.sequencer}
    if event.envelope != "s3":
        described["envelope"] = event.envelope
    try:
        target = Target.of(settings, output_bucket, settings.output_prefix)
        outcome = sync(event, target)
    except IngestError as exc:
        send_to_dlq(settings, exc.reason, exc.code, source, **described, **details)
        return Outcome("failed", ref.key, reason=exc.reason)
    except (ValueError, RuntimeError) as exc:  # a sink that is not configured: fix and redrive
        send_to_dlq(settings, str(exc), "write_failed", source, **described, **details)
        return Outcome("failed", ref.key, reason=str(exc))
    metric = {
        "embedded": "ObjectsEmbedded",
        "skipped": "ObjectsSkipped",
        "stale": "ObjectsStale",
    }.get(outcome.status)
    if metric:
        count(**{metric: 1})
    logger.info(outcome.status, extra={"key": ref.key, "count": outcome.count})
    return outcome


def handle_s3(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A direct S3 notification (or SNS / EventBridge event): every record processed; raise at
    the end if any was transient."""
    try:
        found = object_events(event)
    except IngestError as exc:
        send_to_dlq(settings, exc.reason, exc.code, "s3", event=event)
        return {"results": [], "failed": 1}
    results, transient = [], []
    for item in found:
        try:
            results.append(asdict(process(item, settings, "s3")))
        except TransientError as exc:
            transient.append(str(exc))
    if transient:
        raise TransientError("; ".join(transient))
    return {"results": results}


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    """One SQS message: its S3 events synced; an uninterpretable one dead-lettered."""
    settings = Settings.from_env()
    details = {"message_id": record.message_id}
    try:
        body = json.loads(record.body)
    except (TypeError, ValueError):
        body = None
        reason = "the SQS message body is not JSON"
    else:
        reason = None
    try:
        if reason:
            raise IngestError("bad_event", reason)
        found = object_events(body)
    except IngestError as exc:
        send_to_dlq(settings, exc.reason, exc.code, "sqs", body=record.body, **details)
        return []
    return [asdict(process(item, settings, "sqs", **details)) for item in found]


def handle_sqs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    for failure in processor.fail_messages:
        logger.warning("will retry", extra={"message_id": failure.message_id})
    return response


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 notifications: in SQS messages, or direct (S3, SNS, EventBridge)."""
    records = event.get("Records") or []
    if records and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records):
        return handle_sqs(event, context)
    return handle_s3(event, Settings.from_env())
