"""What one embedded source becomes in the output bucket, shared by S3 ingestion and batches.

For a source ``<key>`` under ``<output prefix>``:

    <key>.npy            float32 matrix, one row per chunk
    <key>.jsonl          one line per row: chunk id, document id, source key, char start/end,
                         tokens, sha256 of the chunk text
    <key>.sparse.jsonl   (with a sparse model) one line per row: chunk id, indices, values
    <key>.manifest.json  the model (name, fingerprint, dim), the source (etag, version), counts

The manifest is written last: its presence means the other files are complete, and a manifest for
the same source version, model fingerprint and chunking means there is nothing to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class OutputKeys:
    vectors: str
    chunks: str
    sparse: str
    manifest: str

    @classmethod
    def for_source(cls, output_prefix: str, source_key: str) -> OutputKeys:
        base = f"{output_prefix}{source_key}"
        return cls(
            vectors=f"{base}.npy",
            chunks=f"{base}.jsonl",
            sparse=f"{base}.sparse.jsonl",
            manifest=f"{base}.manifest.json",
        )


@dataclass
class ChunkRecord:
    """One row of the outputs."""

    id: str
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
class EmbeddedSource:
    """Everything to write for one source."""

    source: dict[str, Any]  # {"bucket", "key", "etag", "version_id", "size"} or inline details
    model: dict[str, Any]  # {"name", "fingerprint", "dim", "kind"}
    chunking: dict[str, Any]  # {"chunk_tokens", "overlap"}
    vectors: np.ndarray
    records: list[ChunkRecord]
    documents: int
    sparse_model: dict[str, Any] | None = None
    sparse: list[tuple[list[int], list[float]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def identity(
    source: dict[str, Any],
    model: dict[str, Any],
    chunking: dict[str, Any],
    sparse_model: dict[str, Any] | None,
) -> dict[str, Any]:
    """What must match for an existing output to count as this one's."""
    return {
        "etag": normalize_etag(source.get("etag")),
        "version_id": source.get("version_id"),
        "sha256": source.get("sha256"),
        "model": model.get("fingerprint"),
        "sparse_model": (sparse_model or {}).get("fingerprint"),
        "chunking": chunking,
    }


def normalize_etag(etag: str | None) -> str | None:
    """S3 events give etags bare, listings and GetObject quoted: compare them bare."""
    return etag.strip('"') if etag else etag


def manifest_of(done: EmbeddedSource, keys: OutputKeys) -> dict[str, Any]:
    from kettle import __version__

    rows, dim = done.vectors.shape
    return {
        "format": MANIFEST_FORMAT,
        "source": done.source,
        "model": done.model,
        "sparse_model": done.sparse_model,
        "chunking": done.chunking,
        "count": rows,
        "documents": done.documents,
        "dtype": "float32",
        "shape": [rows, dim],
        "files": {
            "vectors": keys.vectors,
            "chunks": keys.chunks,
            "sparse": keys.sparse if done.sparse is not None else None,
        },
        "identity": identity(done.source, done.model, done.chunking, done.sparse_model),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kettle_version": __version__,
        **done.extra,
    }


def read_manifest(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The manifest at ``key``, or None when there is none (or it is unreadable)."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        # Without s3:ListBucket a missing key answers 403, not 404.
        if code in {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}:
            return None
        raise
    try:
        manifest = json.loads(body)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def is_current(manifest: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """True when ``manifest`` records this very source version, model and chunking."""
    return bool(manifest) and manifest.get("identity") == wanted


def npy_bytes(vectors: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write(s3: Any, bucket: str, keys: OutputKeys, done: EmbeddedSource) -> dict[str, Any]:
    """Write the vectors, chunk records, sparse vectors and, last, the manifest."""
    s3.put_object(
        Bucket=bucket,
        Key=keys.vectors,
        Body=npy_bytes(done.vectors),
        ContentType="application/octet-stream",
    )
    chunk_rows = [r.__dict__ for r in done.records]
    s3.put_object(
        Bucket=bucket,
        Key=keys.chunks,
        Body=jsonl_bytes(chunk_rows),
        ContentType="application/x-ndjson",
    )
    if done.sparse is not None:
        sparse_rows = [
            {"id": r.id, "indices": [int(i) for i in ind], "values": [float(v) for v in val]}
            for r, (ind, val) in zip(done.records, done.sparse, strict=True)
        ]
        s3.put_object(
            Bucket=bucket,
            Key=keys.sparse,
            Body=jsonl_bytes(sparse_rows),
            ContentType="application/x-ndjson",
        )
    manifest = manifest_of(done, keys)
    s3.put_object(
        Bucket=bucket,
        Key=keys.manifest,
        Body=json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
    )
    return manifest
