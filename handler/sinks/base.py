"""The one interface every sink implements, and what a sink is handed.

A sink keeps the vectors of each source object (an S3 key, or a batch of inline texts) and
replaces them whole: ``write`` puts the new version's chunks and removes every chunk the previous
version had beyond them (the sync ledger says how many that was), ``delete`` removes them all.
Both may raise :class:`SinkThrottled` (try again later: the message goes back to the queue) or
:class:`SinkWriteError` (the write failed for good: the object goes to the dead-letter queue,
labelled as a write failure).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

SearchMode = Literal["dense", "sparse", "hybrid"]
CHUNK_ID_NAMESPACE = uuid.UUID("6b8b4567-3c2a-5d1e-9f00-6b657474c300")  # kettle's, for UUID5


LONG_KEY_BYTES = 1000  # past this, "<key>#<row>" could pass the 1,024-byte key limit


def chunk_id(source_key: str, index: int) -> str:
    """The deterministic id of row ``index`` of a source: a re-ingest overwrites it in place.
    ``<key>#<row>``; for a key over 1,000 bytes ``sha256:<hex of the key>#<row>`` (S3 Vectors'
    keys are at most 1,024 bytes; the row's metadata still names the key)."""
    encoded = source_key.encode("utf-8")
    if len(encoded) > LONG_KEY_BYTES:
        return f"sha256:{hashlib.sha256(encoded).hexdigest()}#{index}"
    return f"{source_key}#{index}"


def prefix_dirs(key: str) -> list[str]:
    """ "a/b/c.txt" -> ["a/", "a/b/"]: what a source_prefix filter matches on."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def point_id(chunk: str) -> str:
    """A UUID5 of a chunk id (Qdrant's point ids are UUIDs or integers)."""
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, chunk))


@dataclass
class ChunkRecord:
    """One text row: where it came from and what it says."""

    id: str  # "<doc id>#<chunk index within the document>", as the .jsonl outputs name it
    doc_id: str
    source_key: str
    start: int
    end: int
    tokens: int
    sha256: str

    @classmethod
    def of(cls, doc_id: str, index: int, source_key: str, chunk: Any) -> ChunkRecord:
        return cls(
            id=f"{doc_id}#{index}",
            doc_id=doc_id,
            source_key=source_key,
            start=chunk.start,
            end=chunk.end,
            tokens=chunk.tokens,
            sha256=hashlib.sha256(chunk.text.encode("utf-8")).hexdigest(),
        )


@dataclass
class ImageRecord:
    """The one row of an image."""

    id: str
    source_key: str
    sha256: str  # of the object's bytes
    width: int
    height: int
    format: str | None  # what Pillow read it as: PNG, JPEG, WEBP, GIF, BMP, ...


@dataclass
class EmbeddedSource:
    """Everything to write for one source (one S3 object, or one batch of inline texts)."""

    source: dict[str, Any]  # {"bucket", "key", "etag", "version_id", "size"} or inline details
    model: dict[str, Any]  # {"name", "fingerprint", "dim", "kind"}
    chunking: dict[str, Any]  # {"chunk_tokens", "overlap"}
    vectors: np.ndarray
    records: list[ChunkRecord] | list[ImageRecord]
    documents: int
    sparse_model: dict[str, Any] | None = None
    sparse: list[tuple[list[int], list[float]]] | None = None
    multi_model: dict[str, Any] | None = None
    multi: list[np.ndarray] | None = None  # [tokens, dim] per row
    texts: list[str] | None = None  # the chunk texts (text rows), for sinks that store them
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The source key every row is filed under."""
        return str(self.source.get("key"))

    def chunk_ids(self) -> list[str]:
        return [chunk_id(self.key, i) for i in range(len(self.records))]

    def row_metadata(self, row: int) -> dict[str, Any]:
        """What every sink stores beside a row's vector (S3 Vectors' metadata, Qdrant's payload):
        one place, so the sinks cannot drift apart in what /search gets back."""
        record = self.records[row]
        return {
            "source_key": self.key,
            "start": getattr(record, "start", None),
            "end": getattr(record, "end", None),
            "doc_id": getattr(record, "doc_id", record.id),
            "model": self.model.get("name"),
            "fingerprint": self.model.get("fingerprint"),
            "version": (
                self.source.get("version_id")
                or self.source.get("etag")
                or self.source.get("sha256")
            ),
            "etag": self.source.get("etag"),
            "dirs": prefix_dirs(self.key),
        }


@dataclass(frozen=True)
class Previous:
    """What the ledger says the sinks hold for a source before this sync."""

    count: int = 0  # rows of the version synced last (0: none, or deleted)
    files: dict[str, Any] | None = None  # the files sink's manifest "files" of that version


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    source_key: str
    start: int | None
    end: int | None
    text: str | None
    doc_id: str | None = None


class SinkThrottled(Exception):
    """The store asked us to slow down past our retries: try the object again later."""


class SinkWriteError(Exception):
    """A write the store refused for good (the dead-letter queue's ``write_failed``)."""


class Sink(Protocol):
    """Where embedded rows go. One module per sink under handler/sinks/, named in VECTOR_SINK."""

    name: ClassVar[str]
    search_modes: ClassVar[frozenset[str]]  # what POST /search can ask of it (may be empty)

    def write(self, done: EmbeddedSource, previous: Previous) -> dict[str, Any]:
        """Replace the source's rows with ``done``'s; what to remember in the ledger."""
        ...

    def delete(self, source_key: str, previous: Previous) -> None:
        """Remove every row of ``source_key``."""
        ...
