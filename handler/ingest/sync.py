"""The sync transaction: one object event through ingestion, text and images alike: skip, fetch,
size check, embed, write, commit.

:func:`sync` takes one :class:`ObjectEvent` (created or removed) to the sinks and the ledger:

1. ordering: an event older than the ledger's for its key (S3's sequencer) changes nothing;
2. skip: the ledger already holds this version, model fingerprints, chunking and sinks (the
   ledger still takes the event's sequencer, so an older event arriving later is stale);
3. fetch the object (the version the event names), checking its size before reading it;
4. embed: text objects as token-aware chunks (dense, and sparse when configured), images as one row;
5. record ``pending`` in the ledger when the writes could leave rows or files it does not count,
   write every sink, then commit the ledger (conditionally: a race is written again, newest wins).

A failure is an IngestError with a code (the caller dead-letters it) or a TransientError (the
caller has the message delivered again; on its last delivery, :func:`abandon`). A version that
cannot be synced, for any reason, leaves nothing: the key's rows, old and half-written, are
removed from every sink and the ledger records ``failed`` with the event's sequencer, because
the bucket no longer holds the older version the rows describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from handler.clients import client
from handler.ingest.documents import documents
from handler.ingest.embedders import Embedders, ImageEmbedder
from handler.ingest.errors import IngestError, TransientError
from handler.ingest.events import ObjectEvent, ObjectRef
from handler.ingest.ledger import Entry, Ledger, LedgerConflict, is_older
from handler.ingest.objects import fetch, is_image, transient_or_permanent
from handler.observability import count, logger
from handler.settings import Settings
from handler.sinks import files as files_sink
from handler.sinks.base import (
    EmbeddedSource,
    Previous,
    SinkThrottled,
    SinkWriteError,
)

Status = Literal["embedded", "skipped", "stale", "deleted", "ignored", "failed"]


RACE_RETRIES = 2  # a lost ledger commit is written again this many times, then retried later


@dataclass(frozen=True)
class Outcome:
    status: Status
    key: str
    count: int = 0
    manifest_key: str | None = None
    reason: str | None = None


@dataclass
class Target:
    """Where a sync writes: the sinks and the ledger beside the files outputs."""

    settings: Settings
    sinks: list[Any]
    ledger: Ledger
    model_name: str | None = None
    multi: bool = False
    multi_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        settings: Settings,
        output_bucket: str,
        output_prefix: str,
        model_name: str | None = None,
        multi: bool = False,
        multi_model: str | None = None,
    ) -> Target:
        from handler.sinks import open_sinks

        return cls(
            settings,
            open_sinks(settings, output_bucket, output_prefix),
            Ledger(client("s3"), output_bucket, output_prefix),
            model_name,
            multi,
            multi_model,
        )

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self.sinks]

    def wanted(self, identity: dict[str, Any]) -> dict[str, Any]:
        return {**identity, "sinks": self.sink_names}


def _embed(
    ref: ObjectRef, target: Target, entry: Entry | None, force: bool
) -> EmbeddedSource | Outcome:
    """Fetch and embed the object; an Outcome("skipped") when the ledger already holds it."""
    settings = target.settings
    image = is_image(ref)
    embedder: Any = (
        ImageEmbedder.load(settings)
        if image
        else Embedders.load(settings, target.model_name, target.multi, target.multi_model)
    )

    def current(source: dict[str, Any]) -> bool:
        return (
            not force
            and entry is not None
            and entry.state == "synced"
            and entry.identity == target.wanted(embedder.identity(source))
        )

    # The event names the version: when it is the one synced, the object need not be read.
    if ref.etag and current(ref.describe()):
        return Outcome("skipped", ref.key, entry.count if entry else 0)
    limit, variable = (
        (settings.max_image_bytes, "MAX_IMAGE_BYTES")
        if image
        else (settings.max_object_bytes, "MAX_OBJECT_BYTES")
    )
    response, source = fetch(ref, limit, variable)
    if current(source):
        response["Body"].close()
        return Outcome("skipped", ref.key, entry.count if entry else 0)
    if image:
        try:
            raw = response["Body"].read(limit + 1)
        except Exception as exc:
            raise transient_or_permanent(exc, ref) from exc
        if len(raw) > limit:
            raise IngestError("too_large", f"{ref.key} is over {limit} bytes ({variable})")
        return embedder.embed(raw, ref.key, source, settings)
    try:
        return embedder.embed(documents(response["Body"], ref.key), ref.key, source)
    except IngestError:
        raise
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc


def _write(done: EmbeddedSource, target: Target, previous: Previous) -> dict[str, Any]:
    """Every sink, or none: a permanent refusal removes this object's rows from all of them."""
    results: dict[str, Any] = {}
    try:
        for sink in target.sinks:
            results[sink.name] = sink.write(done, previous)
    except SinkThrottled as exc:
        raise TransientError(f"write throttled: {exc}") from exc
    except SinkWriteError as exc:
        everything = Previous(
            count=max(previous.count, len(done.records)),
            files={**(previous.files or {}), **(results.get("files", {}).get("files") or {})},
        )
        for sink in target.sinks:
            try:
                sink.delete(done.key, everything)
            except Exception as cleanup:  # the DLQ message says the write failed either way
                logger.warning(
                    "could not remove a failed write",
                    extra={"sink": sink.name, "error": str(cleanup)},
                )
        raise _WriteFailed(str(exc), everything) from exc
    return results


class _WriteFailed(Exception):
    def __init__(self, reason: str, left: Previous) -> None:
        super().__init__(reason)
        self.left = left


def _commit(target: Target, entry: Entry, etag: str | None) -> str | None:
    """The conditional ledger write; the etag of what it wrote (for the next one)."""
    try:
        written = target.ledger.commit(entry, etag)
        if written is None:  # a store that answers no ETag: read it back
            written = target.ledger.read(entry.key)[1]
        return written
    except LedgerConflict:
        raise
    except Exception as exc:
        raise TransientError(f"ledger for {entry.key}: {type(exc).__name__}: {exc}") from exc


def _pending(done: EmbeddedSource, target: Target, previous: Previous) -> Previous | None:
    """What the sinks may hold once this version's writes begin (the larger count, both versions'
    files), or None when the ledger already counts all of it."""
    files = dict(previous.files or {})
    for sink in target.sinks:
        planned = getattr(sink, "planned_files", None)
        if planned is not None:
            files.update({k: k for k in planned(done).values() if k})
    rows = max(previous.count, len(done.records))
    if rows == previous.count and set(files.values()) <= set((previous.files or {}).values()):
        return None
    return Previous(count=rows, files=files or None)


def _drop(
    event: ObjectEvent,
    target: Target,
    etag: str | None,
    previous: Previous,
    reason: str,
    source: dict[str, Any],
) -> None:
    """A version that cannot be synced: the key's rows come out of every sink (the bucket no
    longer holds the version they describe) and the ledger records ``failed`` with the event's
    sequencer. TransientError when a sink is throttled (the next delivery tries again)."""
    left = Previous()
    if previous.count or previous.files:
        try:
            for sink in target.sinks:
                sink.delete(event.ref.key, previous)
        except SinkThrottled as exc:
            raise TransientError(f"removing the old rows throttled: {exc}") from exc
        except SinkWriteError as exc:  # the ledger keeps them counted for the key's next event
            logger.warning("could not remove the old rows", extra={"error": str(exc)})
            left = previous
    sinks = {"files": {"files": left.files}} if left.files else {}
    failed = Entry(
        event.ref.key, "failed", event.sequencer, None, left.count, sinks, source, reason
    )
    _commit(target, failed, etag)


def abandon(event: ObjectEvent, target: Target, reason: str) -> str:
    """The last delivery of an event that failed for a transient reason every time: a created
    version is dropped like an unreadable one (nothing half-written stays). What was done, for
    the dead-letter reason."""
    ref = event.ref
    try:
        entry, etag = target.ledger.read(ref.key)
    except Exception as exc:
        return f"the ledger could not be read ({type(exc).__name__}); the sinks are as they were"
    if entry is not None and is_older(event.sequencer, entry.sequencer):
        return "a newer event has synced the key since"
    previous = entry.previous() if entry is not None else Previous()
    if event.action == "removed":
        return f"its {previous.count} rows stay in the sinks, counted by the ledger"
    try:
        _drop(event, target, etag, previous, reason, ref.describe())
    except (TransientError, LedgerConflict) as exc:
        return (
            f"its rows could not be removed ({exc}); the ledger counts {previous.count} rows "
            "for the key's next event to remove"
        )
    return f"its {previous.count} rows (old and half-written) were removed from every sink"


class _Raced(Exception):
    """Our ledger commit lost to another function's; what we had written (to be cleaned)."""

    def __init__(self, written: Previous) -> None:
        super().__init__("raced")
        self.written = written


def _widen(previous: Previous, also: Previous | None) -> Previous:
    """What to clean: the ledger's previous version and whatever a lost race wrote."""
    if also is None:
        return previous
    files = {**(previous.files or {})}
    files.update({f"raced.{k}": v for k, v in (also.files or {}).items() if v})
    return Previous(count=max(previous.count, also.count), files=files)


def sync(
    event: ObjectEvent,
    target: Target,
    force: bool = False,
    _depth: int = 0,
    _raced: Previous | None = None,
) -> Outcome:
    """Take one object event to the sinks; IngestError / TransientError when it cannot."""
    ref = event.ref
    try:
        entry, etag = target.ledger.read(ref.key)
    except Exception as exc:
        raise TransientError(f"ledger for {ref.key}: {type(exc).__name__}: {exc}") from exc
    if entry is not None and not force and is_older(event.sequencer, entry.sequencer):
        return Outcome("stale", ref.key, reason=f"older than the synced event {entry.sequencer}")
    previous = _widen(entry.previous() if entry is not None else Previous(), _raced)
    try:
        if event.action == "removed":
            outcome = _remove(event, target, entry, etag, previous)
        else:
            outcome = _create(event, target, entry, etag, previous, force)
    except (LedgerConflict, _Raced) as exc:
        # Another function committed this key while we wrote: our rows may be mixed with its.
        # Write the newer of the two events again, over the ledger as it is now.
        if _depth >= RACE_RETRIES:
            raise TransientError(
                f"{ref.key}: raced with another sync {RACE_RETRIES} times"
            ) from None
        now, _ = target.ledger.read(ref.key)
        newer = event
        if now is not None and is_older(event.sequencer, now.sequencer):
            newer = _event_of(now, event)
        logger.info("ledger race: writing the newer version again", extra={"key": ref.key})
        # Our rows may outnumber the winner's: clean up to what we wrote, too.
        written = _widen(previous, exc.written if isinstance(exc, _Raced) else None)
        return sync(newer, target, force=True, _depth=_depth + 1, _raced=written)
    return outcome


def _event_of(entry: Entry, like: ObjectEvent) -> ObjectEvent:
    source = entry.source or {}
    ref = ObjectRef(
        source.get("bucket") or like.ref.bucket,
        entry.key,
        source.get("version_id"),
        source.get("etag"),
        source.get("size"),
    )
    action = "removed" if entry.state == "deleted" else "created"
    return ObjectEvent(action, ref, entry.sequencer, like.envelope)  # type: ignore[arg-type]


def _remove(
    event: ObjectEvent, target: Target, entry: Entry | None, etag: str | None, previous: Previous
) -> Outcome:
    if entry is not None and entry.state == "deleted" and entry.sequencer == event.sequencer:
        return Outcome("skipped", event.ref.key, reason="deleted already")
    try:
        for sink in target.sinks:
            sink.delete(event.ref.key, previous)
    except SinkThrottled as exc:
        raise TransientError(f"delete throttled: {exc}") from exc
    except SinkWriteError as exc:
        raise IngestError("write_failed", f"delete of {event.ref.key}: {exc}") from exc
    _commit(
        target,
        Entry(event.ref.key, "deleted", event.sequencer, None, 0, {}, event.ref.describe()),
        etag,
    )
    count(ObjectsDeleted=1)
    return Outcome("deleted", event.ref.key, previous.count)


def _create(
    event: ObjectEvent,
    target: Target,
    entry: Entry | None,
    etag: str | None,
    previous: Previous,
    force: bool,
) -> Outcome:
    ref = event.ref
    try:
        done = _embed(ref, target, entry, force)
    except IngestError as exc:
        _drop(event, target, etag, previous, exc.reason, ref.describe())
        raise
    if isinstance(done, Outcome):
        if (
            entry is not None
            and event.sequencer
            and event.sequencer != entry.sequencer
            and not is_older(event.sequencer, entry.sequencer)
        ):  # the same version again, put by a newer event: an older event after it is stale
            _commit(target, replace(entry, sequencer=event.sequencer), etag)
        return done
    wanted = target.wanted(
        files_sink.identity(
            done.source, done.model, done.chunking, done.sparse_model, done.multi_model
        )
    )
    pending = _pending(done, target, previous)
    if pending is not None:
        sinks = {"files": {"files": pending.files}} if pending.files else {}
        etag = _commit(
            target,
            Entry(ref.key, "pending", event.sequencer, None, pending.count, sinks, done.source),
            etag,
        )
        previous = pending
    try:
        results = _write(done, target, previous)
    except _WriteFailed as exc:
        failed = Entry(
            ref.key,
            "failed",
            event.sequencer,
            None,
            exc.left.count,
            {"files": {"files": exc.left.files}},
            done.source,
            str(exc),
        )
        try:
            target.ledger.commit(failed, etag)
        except Exception:  # the next sync reads the old entry: it deletes at least as much
            logger.warning("could not record the failed write", extra={"key": ref.key})
        raise IngestError("write_failed", str(exc)) from None
    try:
        _commit(
            target,
            Entry(
                ref.key, "synced", event.sequencer, wanted, len(done.records), results, done.source
            ),
            etag,
        )
    except LedgerConflict:
        files = (results.get("files") or {}).get("files")
        raise _Raced(Previous(count=len(done.records), files=files)) from None
    manifest = (results.get("files") or {}).get("manifest")
    return Outcome("embedded", ref.key, len(done.records), manifest)


def sync_source(done: EmbeddedSource, target: Target) -> Outcome:
    """Inline items (a Step Functions batch of texts): written like an object, keyed by the
    batch's hash (the same items are skipped)."""
    key = done.key
    try:
        entry, etag = target.ledger.read(key)
    except Exception as exc:
        raise TransientError(f"ledger for {key}: {exc}") from exc
    wanted = target.wanted(
        files_sink.identity(
            done.source, done.model, done.chunking, done.sparse_model, done.multi_model
        )
    )
    if entry is not None and entry.state == "synced" and entry.identity == wanted:
        manifest = (entry.sinks.get("files") or {}).get("manifest")
        return Outcome("skipped", key, entry.count, manifest)
    previous = entry.previous() if entry is not None else Previous()
    try:
        results = _write(done, target, previous)
    except _WriteFailed as exc:
        raise IngestError("write_failed", str(exc)) from None
    try:
        _commit(
            target,
            Entry(key, "synced", None, wanted, len(done.records), results, done.source),
            etag,
        )
    except LedgerConflict:
        raise TransientError(f"{key}: raced with another sync") from None
    return Outcome("embedded", key, len(done.records), (results.get("files") or {}).get("manifest"))
