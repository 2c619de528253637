"""Ingestion's failures: one IngestError with a code (the object goes to the dead-letter queue
with it), and TransientError (the object is tried again later)."""

from __future__ import annotations

from typing import Literal

IngestCode = Literal[
    "unsupported_type",  # an extension / Content-Type kettle does not read
    "too_large",  # past MAX_OBJECT_BYTES, MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS
    "undecodable",  # not UTF-8, or an image that does not decode
    "bad_document",  # .json / .jsonl whose shape is not documents
    "object_unavailable",  # gone, or not readable by this function
    "model_error",  # the model failed on it
    "model_not_configured",  # it needs a kind of model this deployment has not configured
    "bad_event",  # a message that is no S3 event kettle can interpret
    "write_failed",  # a sink refused the write for good
    "throttled",  # transient failures (throttling, timeouts) on every receive SQS allows
    "internal_error",  # an unexpected exception on every receive SQS allows (a bug: report it)
]


class IngestError(Exception):
    """An object (or message) that cannot be synced as it is: it goes to the dead-letter queue
    with ``code`` and the reason."""

    def __init__(self, code: IngestCode, reason: str) -> None:
        super().__init__(reason)
        self.code: IngestCode = code
        self.reason = reason


class TransientError(Exception):
    """A failure worth another try (throttling, a dropped connection, a write that raced)."""
