"""The entry points: S3 notifications through SQS (Powertools' BatchProcessor), or direct.

Through SQS, each message is one record of the batch: a transient failure (throttling, a dropped
connection, a lost race) fails only that record, so SQS delivers it again (batchItemFailures); a
permanent one is recorded in the dead-letter queue with its code and reason, and the message is
done. On the last receive the queue allows (the record's ApproximateReceiveCount reaching
MAX_RECEIVE_COUNT, the queue's maxReceiveCount) a transient failure is dead-lettered too, as
``throttled`` with the counts, its half-written version removed (sync.abandon), and an
unexpected exception as ``internal_error``: SQS's redrive would move the message with no reason.
A direct S3 event raises at the end when any record was transient, so Lambda's asynchronous
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
from handler.ingest.documents import SUPPORTED, extension
from handler.ingest.errors import IngestError, TransientError
from handler.ingest.events import ObjectEvent, object_events
from handler.ingest.sync import Outcome, Target, abandon, sync
from handler.observability import count, logger
from handler.settings import Settings

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
RESERVE_S = 5.0  # of an invocation's time kept back from the estimate (writes, the response)


class Budget:
    """This invocation's time: once it has synced an object, a text object whose estimated sync
    (its size / INGEST_BYTES_PER_SECOND) does not fit what is left goes back to the queue for
    another invocation, so one batch of large objects cannot time out whole on every receive."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.busy = False

    def start(self, context: Any) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self.deadline = time.monotonic() + remaining() / 1000 if callable(remaining) else None
        self.busy = False

    def check(self, event: ObjectEvent, settings: Settings) -> None:
        """TransientError("deferred ...") when ``event`` should wait for another invocation."""
        if not self.busy or self.deadline is None or event.action != "created":
            return
        if extension(event.ref.key) not in SUPPORTED:  # images: one model call, not a rate
            return
        need = (event.ref.size or 0) / settings.ingest_bytes_per_second
        left = self.deadline - time.monotonic() - RESERVE_S
        if need > left:
            raise TransientError(
                f"deferred to another invocation: {event.ref.key} ({event.ref.size} bytes) needs "
                f"~{need:.0f} s at {settings.ingest_bytes_per_second} bytes/s "
                f"(INGEST_BYTES_PER_SECOND), {max(left, 0):.0f} s are left"
            )


budget = Budget()


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


MAX_BODY_IN_DLQ = 65536  # characters of a message body copied into its DLQ record (256 KB cap)


def describe(event: ObjectEvent) -> dict[str, Any]:
    """The object event as the DLQ record names it."""
    described = {**event.ref.describe(), "action": event.action, "sequencer": event.sequencer}
    if event.envelope != "s3":
        described["envelope"] = event.envelope
    return described


def _target(event: ObjectEvent, settings: Settings) -> Target:
    output_bucket = settings.output_bucket or event.ref.bucket
    return Target.of(settings, output_bucket, settings.output_prefix)


def process(event: ObjectEvent, settings: Settings, source: str, **details: Any) -> Outcome:
    """One object event: synced, skipped, stale, deleted or ignored; or recorded in the DLQ.
    TransientError propagates."""
    ref = event.ref
    output_bucket = settings.output_bucket or ref.bucket
    if settings.input_prefix and not ref.key.startswith(settings.input_prefix):
        return Outcome("ignored", ref.key, reason=f"not under {settings.input_prefix}")
    if output_bucket == ref.bucket and ref.key.startswith(settings.output_prefix):
        return Outcome("ignored", ref.key, reason="an output of this function")
    described = describe(event)
    try:
        target = _target(event, settings)
    except (ValueError, RuntimeError) as exc:  # a sink that is not configured: fix and redrive
        send_to_dlq(settings, str(exc), "write_failed", source, **described, **details)
        return Outcome("failed", ref.key, reason=str(exc))
    try:
        outcome = sync(event, target)
    except IngestError as exc:
        send_to_dlq(settings, exc.reason, exc.code, source, **described, **details)
        return Outcome("failed", ref.key, reason=exc.reason)
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


def _body(record: SQSRecord) -> dict[str, Any]:
    body = record.body or ""
    if len(body) <= MAX_BODY_IN_DLQ:
        return {"body": body}
    return {"body": body[:MAX_BODY_IN_DLQ], "body_truncated_from": len(body)}


def _receives(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (KeyError, TypeError, ValueError):
        return 0


def give_up(
    event: ObjectEvent, settings: Settings, exc: Exception, receives: int, **details: Any
) -> Outcome:
    """The last receive of an event whose every try failed: dead-lettered with the counts, its
    half-written version removed first (sync.abandon)."""
    limit = settings.max_receive_count
    transient = isinstance(exc, TransientError)
    failure = str(exc) if transient else f"{type(exc).__name__}: {exc}"
    try:
        done = abandon(event, _target(event, settings), failure)
    except Exception as cleanup:  # the DLQ record says what failed either way
        done = f"nothing was cleaned up ({type(cleanup).__name__}: {cleanup})"
    reason = (
        f"{failure}; still failing on receive {receives} of {limit} (MAX_RECEIVE_COUNT, the "
        f"queue's maxReceiveCount): {done}"
    )
    code = "throttled" if transient else "internal_error"
    send_to_dlq(
        settings,
        reason,
        code,
        "sqs",
        **describe(event),
        receive_count=receives,
        max_receive_count=limit,
        **details,
    )
    return Outcome("failed", event.ref.key, reason=reason)


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    """One SQS message: its S3 events synced; an uninterpretable one dead-lettered. A transient
    failure fails the record (SQS delivers it again) unless this is its last receive."""
    settings = Settings.from_env()
    details = {"message_id": record.message_id}
    receives = _receives(record)
    last = 0 < settings.max_receive_count <= receives
    try:
        try:
            body = json.loads(record.body)
        except (TypeError, ValueError):
            raise IngestError("bad_event", "the SQS message body is not JSON") from None
        except RecursionError:
            raise IngestError(
                "bad_event", "the SQS message body is JSON nested too deeply to be an S3 event"
            ) from None
        found = object_events(body)
    except IngestError as exc:
        send_to_dlq(settings, exc.reason, exc.code, "sqs", **_body(record), **details)
        return []
    results, retry = [], []
    for item in found:
        try:
            if not last:  # the last receive goes ahead: deferring it would dead-letter it
                budget.check(item, settings)
            budget.busy = True
            results.append(asdict(process(item, settings, "sqs", **details)))
        except TransientError as exc:
            if not last:
                retry.append(str(exc))
                continue
            results.append(asdict(give_up(item, settings, exc, receives, **details)))
        except Exception as exc:  # a bug: retried like a transient failure, then dead-lettered
            if not last:
                logger.exception("unexpected failure", extra={"key": item.ref.key})
                retry.append(f"{type(exc).__name__}: {exc}")
                continue
            results.append(asdict(give_up(item, settings, exc, receives, **details)))
    if retry:
        raise TransientError("; ".join(retry))
    return results


def handle_sqs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    budget.start(context)
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
