"""S3 notifications in any envelope -> the object events they carry.

A message may be an S3 notification ({"Records": [...]}), the same inside an SNS notification
(SNS -> SQS, raw delivery off) or an SNS Lambda event, or an EventBridge "Object Created" /
"Object Deleted" event (EventBridge -> SQS). All of them become :class:`ObjectEvent`s; S3's test
event is known and carries none; anything else raises IngestError("bad_event") with the reason,
so it goes to the dead-letter queue instead of vanishing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent

from handler.ingest.errors import IngestError

Action = Literal["created", "removed"]
MAX_ENVELOPES = 3  # SNS inside SQS inside ...: deeper than this is not an S3 event


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag.strip('"') if self.etag else self.etag,
            "size": self.size,
        }


@dataclass(frozen=True)
class ObjectEvent:
    """One object created or removed; ``sequencer`` orders the events of one key."""

    action: Action
    ref: ObjectRef
    sequencer: str | None = None
    envelope: str = "s3"  # "s3" | "sns" | "eventbridge"


def _action(name: str) -> Action | None:
    if name.startswith("ObjectCreated"):
        return "created"
    if name.startswith("ObjectRemoved"):
        return "removed"
    return None


def _s3_records(body: dict[str, Any], envelope: str) -> list[ObjectEvent]:
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        raise IngestError("bad_event", '"Records" is not a non-empty list of S3 records')
    found = []
    for number, record in enumerate(S3Event(body).records):
        raw = body["Records"][number]
        if not isinstance(raw, dict) or raw.get("eventSource") != "aws:s3":
            source = raw.get("eventSource") if isinstance(raw, dict) else None
            raise IngestError(
                "bad_event", f"Records[{number}] is not an S3 record (eventSource {source!s})"
            )
        action = _action(str(raw.get("eventName", "")))
        if action is None:
            raise IngestError(
                "bad_event",
                f"Records[{number}]: {raw.get('eventName')!s} is not an event kettle syncs "
                "(ObjectCreated:*, ObjectRemoved:*)",
            )
        try:
            obj = record.s3.get_object
            size = obj.raw_event.get("size")
            found.append(
                ObjectEvent(
                    action=action,
                    ref=ObjectRef(
                        bucket=record.s3.bucket.name,
                        key=unquote_plus(obj.key),  # S3 sends keys URL-encoded, spaces as "+"
                        version_id=obj.version_id or None,
                        etag=obj.etag or None,
                        size=size if isinstance(size, int) else None,
                    ),
                    sequencer=obj.raw_event.get("sequencer") or None,
                    envelope=envelope,
                )
            )
        except (KeyError, TypeError, AttributeError):
            raise IngestError(
                "bad_event", f"Records[{number}] is not an S3 notification record"
            ) from None
    return found


def _eventbridge(body: dict[str, Any]) -> list[ObjectEvent]:
    event = S3EventBridgeNotificationEvent(body)
    action = {"Object Created": "created", "Object Deleted": "removed"}.get(body["detail-type"])
    if action is None:
        raise IngestError(
            "bad_event", f"EventBridge {body['detail-type']!s} is not an event kettle syncs"
        )
    try:
        obj = event.detail.object
        size = obj.size
        return [
            ObjectEvent(
                action=action,  # type: ignore[arg-type]
                ref=ObjectRef(
                    bucket=event.detail.bucket.name,
                    key=obj.key,
                    version_id=obj.raw_event.get("version-id") or None,
                    etag=obj.etag or None,
                    size=size if isinstance(size, int) else None,
                ),
                sequencer=obj.raw_event.get("sequencer") or None,
                envelope="eventbridge",
            )
        ]
    except (KeyError, TypeError, AttributeError):
        raise IngestError(
            "bad_event", "an EventBridge S3 event without detail.bucket / detail.object"
        ) from None


def object_events(body: Any, depth: int = 0, envelope: str = "s3") -> list[ObjectEvent]:
    """The object events of one message body (parsed JSON); IngestError("bad_event") when it is
    none kettle can interpret."""
    if depth > MAX_ENVELOPES:
        raise IngestError("bad_event", "envelopes nested too deep to be an S3 event")
    if not isinstance(body, dict):
        raise IngestError(
            "bad_event", f"the message is a JSON {type(body).__name__}, not an object"
        )
    if body.get("Event") == "s3:TestEvent":
        return []  # S3's test notification when the queue or topic is wired up
    if body.get("Type") == "Notification" and "Message" in body:  # SNS -> SQS
        return object_events(_json(body["Message"], "the SNS Message"), depth + 1, "sns")
    if body.get("source") == "aws.s3" and "detail-type" in body and "detail" in body:
        return _eventbridge(body)
    records = body.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and r.get("EventSource") == "aws:sns" for r in records)
    ):  # an SNS Lambda event
        found = []
        for r in records:
            message = (r.get("Sns") or {}).get("Message")
            found += object_events(_json(message, "the SNS Message"), depth + 1, "sns")
        return found
    if "Records" in body:
        return _s3_records(body, envelope)
    keys = ", ".join(sorted(str(k) for k in body)[:6]) or "none"
    raise IngestError("bad_event", f"not an S3, SNS or EventBridge S3 event (keys: {keys})")


def _json(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise IngestError("bad_event", f"{what} is not a string")
    try:
        return json.loads(text)
    except ValueError:
        raise IngestError("bad_event", f"{what} is not JSON") from None
    except RecursionError:
        raise IngestError("bad_event", f"{what} is JSON nested too deeply to be an event") from None
