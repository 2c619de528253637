"""S3 ingestion: object -> documents -> token-aware chunks -> vectors -> the sinks.

An S3 ObjectCreated / ObjectRemoved notification arrives through SQS (directly from S3, or
wrapped by SNS or EventBridge) or directly. Every object ends synced (the sinks hold exactly its
current version's rows), skipped (already synced: same etag/version, model fingerprints, chunking
and sinks), stale (an event older than the one synced: nothing changes) or in the dead-letter
queue with its reason.

The rooms: ``documents`` (an object body as documents), ``errors`` (IngestError with a code,
TransientError), ``events`` (S3 / SNS / EventBridge envelopes -> object events), ``ledger`` (what is
synced per key, in order), ``embedders`` (the models an object is embedded with), ``objects``
(reading an S3 object: image or text, size checked, S3's failures sorted), ``sync`` (the sync
transaction: one object event, text or image: skip, fetch, embed, write, commit), ``sqs`` (the
entry points on Powertools' BatchProcessor).
"""

from handler.ingest.embedders import Embedders
from handler.ingest.errors import IngestError, TransientError
from handler.ingest.events import ObjectEvent, ObjectRef, object_events
from handler.ingest.sqs import handle, handle_s3, handle_sqs, send_to_dlq
from handler.ingest.sync import Outcome, Target, sync, sync_source

__all__ = [
    "Embedders",
    "IngestError",
    "ObjectEvent",
    "ObjectRef",
    "Outcome",
    "Target",
    "TransientError",
    "handle",
    "handle_s3",
    "handle_sqs",
    "object_events",
    "send_to_dlq",
    "sync",
    "sync_source",
]
