"""The sync ledger: per source key, what the sinks hold and which S3 event put it there.

One small JSON object per key, ``<output prefix>_sync/<key>.json`` in the output bucket:
``{"key", "state": "synced" | "deleted" | "failed", "sequencer", "identity", "count", "sinks",
"source", "updated"}``. It is what makes the sinks follow S3 rather than the order events happen
to arrive in:

- an event whose S3 ``sequencer`` is older than the ledger's changes nothing (a late redelivery of
  v1 never overwrites v2, nor resurrects a deleted object);
- ``count`` is how many rows the version synced last had, so a sink keyed by chunk id deletes
  exactly the rows a shorter new version no longer has;
- it is written last, with S3's conditional writes (If-Match / If-None-Match), so two functions
  syncing one key at once cannot both win: the loser sees LedgerConflict and the pipeline writes
  the newer version again over whatever the race left.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from handler.sinks.base import Previous

State = Literal["synced", "deleted", "failed"]


class LedgerConflict(Exception):
    """Another function committed this key since we read it."""


def sequencer_order(sequencer: str | None) -> int | None:
    """S3's sequencer as a number: hex strings of different lengths compare after left-padding
    the shorter with zeros, which is comparing their values."""
    if not sequencer:
        return None
    try:
        return int(sequencer, 16)
    except ValueError:
        return None


def is_older(sequencer: str | None, than: str | None) -> bool:
    """True when ``sequencer`` is known to come before ``than`` (unknown: not older)."""
    a, b = sequencer_order(sequencer), sequencer_order(than)
    return a is not None and b is not None and a < b


@dataclass
class Entry:
    key: str
    state: State
    sequencer: str | None
    identity: dict[str, Any] | None
    count: int
    sinks: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    updated: str = ""

    def previous(self) -> Previous:
        files = (self.sinks.get("files") or {}).get("files")
        return Previous(count=self.count, files=files)


class Ledger:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def object_key(self, source_key: str) -> str:
        return f"{self.prefix}_sync/{source_key}.json"

    def read(self, source_key: str) -> tuple[Entry | None, str | None]:
        """(entry, its etag for a conditional commit); (None, None) when the key was never synced."""
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.object_key(source_key))
        except ClientError as exc:
            # Without s3:ListBucket (the template grants none) a missing key answers 403.
            code = exc.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}:
                return None, None
            raise
        etag = response.get("ETag")
        try:
            data = json.loads(response["Body"].read())
            return Entry(**data), etag
        except (ValueError, TypeError):
            return None, etag  # unreadable: overwritten by the next commit

    def commit(self, entry: Entry, etag: str | None) -> None:
        """Write ``entry`` if the ledger still has ``etag`` (None: if there is none yet)."""
        from botocore.exceptions import ClientError

        entry.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = json.dumps(asdict(entry), ensure_ascii=False).encode("utf-8")
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.object_key(entry.key),
                Body=body,
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}:
                raise LedgerConflict(entry.key) from None
            raise
