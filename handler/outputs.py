"""What one embedded source becomes in the output bucket, shared by S3 ingestion and batches.

For a source ``<key>`` under ``<output prefix>``:

    <key>.npy            float32 matrix, one row per chunk (per image: one row)
    <key>.jsonl          one line per row. Text: chunk id, document id, source key, char start/end,
                         tokens, sha256 of the chunk text. Image: id, source key, sha256 of the
                         object's bytes, width, height, format
    <key>.sparse.jsonl   (with a sparse model) one line per row: chunk id, indices, values
    <key>.multi.npz      (batches asked for "multi": true; a late-interaction model) the ColBERT
                         token vectors of every row, flat: ``vectors`` float32 [total tokens, dim]
                         and ``offsets`` int64 [rows + 1]; row i's tokens are
                         ``vectors[offsets[i]:offsets[i + 1]]`` (document mode: punctuation
                         dropped, at most the model's max_length tokens). Read it with
                         ``np.load(f, allow_pickle=False)``.
    <key>.manifest.json  the model (name, fingerprint, dim), the source (etag, version), counts;
                         ``multi_model`` and ``multi`` ({"tokens", "dim", "layout"}) with a .multi.npz

The manifest is written last: its presence means the other files are complete, and a manifest for
the same source version, model fingerprints and chunking means there is nothing to do.
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
    multi: str
    manifest: str

    @classmethod
    def for_source(cls, output_prefix: str, source_key: str) -> OutputKeys:
        base = f"{output_prefix}{source_key}"
        return cls(
            vectors=f"{base}.npy",
            chunks=f"{base}.jsonl",
            sparse=f"{base}.sparse.jsonl",
            multi=f"{base}.multi.npz",
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
class ImageRecord:
    """The one row of an image's outputs."""

    id: str
    source_key: str
    sha256: str  # of the object's bytes
    width: int
    height: int
    format: str | None  # what Pillow read it as: PNG, JPEG, WEBP, GIF, BMP, ...


@dataclass
class EmbeddedSource:
    """Everything to write for one source."""

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
    extra: dict[str, Any] = field(default_factory=dict)


def identity(
    source: dict[str, Any],
    model: dict[str, Any],
    chunking: dict[str, Any],
    sparse_model: dict[str, Any] | None,
    multi_model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What must match for an existing output to count as this one's (the multi-vector model
    only when there is one, so outputs written without it keep their identity)."""
    wanted = {
        "etag": normalize_etag(source.get("etag")),
        "version_id": source.get("version_id"),
        "sha256": source.get("sha256"),
        "model": model.get("fingerprint"),
        "sparse_model": (sparse_model or {}).get("fingerprint"),
        "chunking": chunking,
    }
    if multi_model is not None:
        wanted["multi_model"] = multi_model.get("fingerprint")
    return wanted


def normalize_etag(etag: str | None) -> str | None:
    """S3 events give etags bare, listings and GetObject quoted: compare them bare."""
    return etag.strip('"') if etag else etag


def manifest_of(done: EmbeddedSource, keys: OutputKeys) -> dict[str, Any]:
    from kettle import __version__

    rows, dim = done.vectors.shape
    multi = None
    if done.multi is not None:
        multi = {
            "layout": "flat+offsets",
            "rows": len(done.multi),
            "tokens": int(sum(len(m) for m in done.multi)),
            "dim": (done.multi_model or {}).get("dim"),
            "dtype": "float32",
        }
    return {
        "format": MANIFEST_FORMAT,
        "source": done.source,
        "model": done.model,
        "sparse_model": done.sparse_model,
        "multi_model": done.multi_model,
        "multi": multi,
        "chunking": done.chunking,
        "count": rows,
        "documents": done.documents,
        "dtype": "float32",
        "shape": [rows, dim],
        "files": {
            "vectors": keys.vectors,
            "chunks": keys.chunks,
            "sparse": keys.sparse if done.sparse is not None else None,
            "multi": keys.multi if done.multi is not None else None,
        },
        "identity": identity(
            done.source, done.model, done.chunking, done.sparse_model, done.multi_model
        ),
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


def multi_npz_bytes(rows: list[np.ndarray], dim: int) -> bytes:
    """Per-row [tokens, dim] arrays as one .npz: ``vectors`` [total, dim] and ``offsets``."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    flat = (
        np.concatenate([np.asarray(r, np.float32).reshape(-1, dim) for r in rows])
        if rows
        else np.zeros((0, dim), np.float32)
    )
    buffer = io.BytesIO()
    np.savez(buffer, vectors=np.ascontiguousarray(flat, np.float32), offsets=offsets)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write(s3: Any, bucket: str, keys: OutputKeys, done: EmbeddedSource) -> dict[str, Any]:
    """Write the vectors, row records, sparse and multi-vectors and, last, the manifest."""
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
    if done.multi is not None:
        s3.put_object(
            Bucket=bucket,
            Key=keys.multi,
            Body=multi_npz_bytes(done.multi, int((done.multi_model or {})["dim"])),
            ContentType="application/octet-stream",
        )
    manifest = manifest_of(done, keys)
    s3.put_object(
        Bucket=bucket,
        Key=keys.manifest,
        Body=json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
    )
    return manifest
