"""The sync ledger: per source key, what the sinks hold and which S3 event put it there.

One small JSON object per key, ``<output prefix>_sync/<sha256 of the key>.json`` in the output
bucket (a digest: S3 keys may be 1,024 bytes, and the prefix would push a long one past that):
``{"key", "state": "synced" | "pending" | "deleted" | "failed", "sequencer", "identity", "count",
"sinks", "source", "updated"}``. It is what makes the sinks follow S3 rather than the order events
happen to arrive in:

- an event whose S3 ``sequencer`` is older than the ledger's changes nothing (a late redelivery of
  v1 never overwrites v2, nor resurrects a deleted object); a skipped event still records its
  sequencer, so an older event that arrives after it is stale too;
- ``count`` is how many rows the sinks may hold for the key, so a sink keyed by chunk id deletes
  exactly the rows a shorter new version no longer has; ``pending`` is recorded before a version's
  writes begin, with the larger of the two versions' counts and both versions' files, so whatever
  a write interrupted half-way left behind is known and removed by the next event of the key;
- it is written last, with S3's conditional writes (If-Match / If-None-Match), so two functions
  syncing one key at once cannot both win: the loser sees LedgerConflict and the sync writes
  the newer version again over whatever the race left.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from handler.sinks.base import Previous

State = Literal["synced", "pending", "deleted", "failed"]


class LedgerConflict(Exception):
    """Another function committed this key since we read it."""


def is_older(sequencer: str | None, than: str | None) -> bool:
    """True when ``sequencer`` is known to come before ``than`` (unknown: not older).

    As S3's documentation says to compare them: right-pad the shorter with zeros, then compare
    the strings (not their hex values: S3 may lengthen a key's sequencers)."""
    if not sequencer or not than:
        return False
    width = max(len(sequencer), len(than))
    return sequencer.upper().ljust(width, "0") < than.upper().ljust(width, "0")


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


MAX_S3_KEY_BYTES = 1024


class Ledger:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def object_key(self, source_key: str) -> str:
        digest = hashlib.sha256(source_key.encode("utf-8")).hexdigest()
        return f"{self.prefix}_sync/{digest}.json"

    def legacy_key(self, source_key: str) -> str | None:
        """Where ledgers before the digest kept the entry (read once, so an upgrade keeps what
        each key's sinks hold); None when that key could not exist."""
        key = f"{self.prefix}_sync/{source_key}.json"
        return key if len(key.encode("utf-8")) <= MAX_S3_KEY_BYTES else None

    def _get(self, key: str) -> tuple[Entry | None, str | None, bool]:
        """(entry, etag, found)."""
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # Without s3:ListBucket (the template grants none) a missing key answers 403.
            code = exc.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}:
                return None, None, False
            raise
        etag = response.get("ETag")
        try:
            data = json.loads(response["Body"].read())
            return Entry(**data), etag, True
        except (ValueError, TypeError):
            return None, etag, True  # unreadable: overwritten by the next commit

    def read(self, source_key: str) -> tuple[Entry | None, str | None]:
        """(entry, its etag for a conditional commit); (None, None) when the key was never synced."""
        entry, etag, found = self._get(self.object_key(source_key))
        if not found and (legacy := self.legacy_key(source_key)):
            entry, _, _ = self._get(legacy)
            etag = None  # the next commit creates the digest-keyed entry
        if entry is not None and entry.key != source_key:
            return None, etag  # not this key's entry: overwritten by the next commit
        return entry, etag

    def commit(self, entry: Entry, etag: str | None) -> str | None:
        """Write ``entry`` if the ledger still has ``etag`` (None: if there is none yet); the
        etag of what was written, for the next conditional commit."""
        from botocore.exceptions import ClientError

        entry.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = json.dumps(asdict(entry), ensure_ascii=False).encode("utf-8")
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            response = self.s3.put_object(
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
        return response.get("ETag") if isinstance(response, dict) else None
