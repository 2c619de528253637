"""The ``files`` sink: each source's rows as files in the output bucket (the default sink).

For a source ``<key>`` under ``<output prefix>``, one version's files carry a tag (12 hex of the
hash of what identifies the version: source etag/version, model fingerprints, chunking):

    <key>.<tag>.npy           float32 matrix, one row per chunk (per image: one row)
    <key>.<tag>.jsonl         one line per row. Text: chunk id, document id, source key, char
                              start/end, tokens, sha256 of the chunk text. Image: id, source key,
                              sha256 of the object's bytes, width, height, format
    <key>.<tag>.sparse.jsonl  (with sparse vectors) one line per row: chunk id, indices, values
    <key>.<tag>.multi.npz     (batches asked for "multi": true; a late-interaction model) the
                              ColBERT token vectors of every row, flat: ``vectors`` float32
                              [total tokens, dim] and ``offsets`` int64 [rows + 1]; row i's tokens
                              are ``vectors[offsets[i]:offsets[i + 1]]``. Read it with
                              ``np.load(f, allow_pickle=False)``.
    <key>.manifest.json       the commit: the model (name, fingerprint, dim), the source (etag,
                              version), counts, and ``files``, the names of this version's files

A key too long for these names under S3's 1,024-byte limit (about 980 bytes and up) is filed as
``<output prefix>_long/<sha256 of the key>`` instead; its manifest's ``source.key`` names it.

Read the manifest first, then the files it names. The manifest is written last and the previous
version's files are deleted only after it, so a reader never pairs a new ``.npy`` with an old
``.jsonl``: it sees one version whole (or, at worst, a file that is gone and reads again).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from handler.sinks.base import EmbeddedSource, Previous, SinkThrottled, SinkWriteError

MANIFEST_FORMAT = 2  # 2: versioned file names, the manifest names them
MAX_S3_KEY_BYTES = 1024
LONGEST_SUFFIX = len(".0123456789ab.sparse.jsonl")  # the tag and the longest file kind


@dataclass(frozen=True)
class OutputKeys:
    vectors: str
    chunks: str
    sparse: str
    multi: str
    manifest: str

    @classmethod
    def for_source(cls, output_prefix: str, source_key: str, tag: str = "") -> OutputKeys:
        base = f"{output_prefix}{source_key}"
        if len(base.encode("utf-8")) + LONGEST_SUFFIX > MAX_S3_KEY_BYTES:
            digest = hashlib.sha256(source_key.encode("utf-8")).hexdigest()
            base = f"{output_prefix}_long/{digest}"
        version = f"{base}.{tag}" if tag else base
        return cls(
            vectors=f"{version}.npy",
            chunks=f"{version}.jsonl",
            sparse=f"{version}.sparse.jsonl",
            multi=f"{version}.multi.npz",
            manifest=f"{base}.manifest.json",
        )


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


def version_files(done: EmbeddedSource, keys: OutputKeys) -> dict[str, str | None]:
    """The manifest's ``files``: this version's file names by kind."""
    return {
        "vectors": keys.vectors,
        "chunks": keys.chunks,
        "sparse": keys.sparse if done.sparse is not None else None,
        "multi": keys.multi if done.multi is not None else None,
    }


def keys_of(output_prefix: str, done: EmbeddedSource) -> OutputKeys:
    """The file names of ``done``'s version (the same version always gets the same names)."""
    wanted = identity(done.source, done.model, done.chunking, done.sparse_model, done.multi_model)
    return OutputKeys.for_source(output_prefix, done.key, identity_tag(wanted))


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
        "manifest_key": keys.manifest,
        "files": version_files(done, keys),
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


def identity_tag(wanted: dict[str, Any]) -> str:
    """12 hex naming one version's files: the same version always gets the same names."""
    import hashlib

    blob = json.dumps(wanted, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def _put(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def write(s3: Any, bucket: str, output_prefix: str, done: EmbeddedSource) -> dict[str, Any]:
    """Write one version's files and, last, the manifest that commits them; the manifest."""
    keys = keys_of(output_prefix, done)
    _put(s3, bucket, keys.vectors, npy_bytes(done.vectors), "application/octet-stream")
    chunk_rows = [r.__dict__ for r in done.records]
    _put(s3, bucket, keys.chunks, jsonl_bytes(chunk_rows), "application/x-ndjson")
    if done.sparse is not None:
        sparse_rows = [
            {"id": r.id, "indices": [int(i) for i in ind], "values": [float(v) for v in val]}
            for r, (ind, val) in zip(done.records, done.sparse, strict=True)
        ]
        _put(s3, bucket, keys.sparse, jsonl_bytes(sparse_rows), "application/x-ndjson")
    if done.multi is not None:
        dim = int((done.multi_model or {})["dim"])
        _put(s3, bucket, keys.multi, multi_npz_bytes(done.multi, dim), "application/octet-stream")
    manifest = manifest_of(done, keys)
    body = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    _put(s3, bucket, keys.manifest, body, "application/json")
    return manifest


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    if keys:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})


def _is_throttle(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"} or (
            status >= 500
        )
    return isinstance(exc, (BotoCoreError, OSError))


class FilesSink:
    """``.npy`` + ``.jsonl`` + manifest per source in the output bucket (handler/sinks/files.py)."""

    name: ClassVar[str] = "files"
    search_modes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, bucket: str, prefix: str, s3: Any | None = None) -> None:
        from handler.clients import client

        self.bucket, self.prefix = bucket, prefix
        self.s3 = s3 if s3 is not None else client("s3")

    def planned_files(self, done: EmbeddedSource) -> dict[str, str | None]:
        """The files ``write`` will put for ``done`` (the ledger counts them before they exist)."""
        return version_files(done, keys_of(self.prefix, done))

    def write(self, done: EmbeddedSource, previous: Previous) -> dict[str, Any]:
        try:
            manifest = write(self.s3, self.bucket, self.prefix, done)
            stale = set((previous.files or {}).values()) - set(manifest["files"].values())
            _delete_keys(self.s3, self.bucket, sorted(k for k in stale if k))
        except Exception as exc:
            raise _failure(exc, f"s3://{self.bucket}/{self.prefix}{done.key}") from exc
        return {"files": manifest["files"], "manifest": manifest["manifest_key"]}

    def delete(self, source_key: str, previous: Previous) -> None:
        manifest = OutputKeys.for_source(self.prefix, source_key).manifest
        try:  # the manifest first: with it gone, no reader follows the files
            self.s3.delete_object(Bucket=self.bucket, Key=manifest)
            _delete_keys(
                self.s3, self.bucket, sorted(k for k in (previous.files or {}).values() if k)
            )
        except Exception as exc:
            raise _failure(exc, f"s3://{self.bucket}/{manifest}") from exc


def _failure(exc: Exception, where: str) -> Exception:
    if _is_throttle(exc):
        return SinkThrottled(f"files sink: {where}: {type(exc).__name__}: {exc}")
    return SinkWriteError(f"files sink: cannot write {where}: {exc}")
