"""The ``s3vectors`` sink: Amazon S3 Vectors through boto3 (nothing added to the layer).

Each row is one vector in VECTOR_BUCKET / VECTOR_INDEX, keyed by its deterministic chunk id
(``<source key>#<row>``), so a re-ingest overwrites in place and an object that shrinks loses
exactly the keys past its new row count (the ledger says how many it had). Metadata per vector:
``source_key``, ``start``, ``end``, ``doc_id``, ``model``, ``fingerprint``, ``version`` (version
id, else etag), ``etag``, ``dirs`` (every "/"-ending prefix of the key: S3 Vectors filters have no
prefix operator, but ``$eq`` on a list matches any element, so ``source_prefix`` "a/b/" is a
server-side filter) and, when it fits the 40 KB metadata limit, ``text`` (a non-filterable key:
the template declares it so).

PutVectors takes at most 500 vectors and 20 MiB a request; throttling (429 / 503) is retried with
exponential backoff and jitter, past which the object goes back to the queue (SinkThrottled).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from handler.settings import MAX_TOP_K  # QueryVectors: topK at most 100 (/search's bound too)
from handler.sinks.base import (
    EmbeddedSource,
    Hit,
    Previous,
    SinkThrottled,
    SinkWriteError,
    chunk_id,
)

MAX_VECTORS_PER_PUT = 500  # PutVectors: at most 500 vectors a request
MAX_PUT_BYTES = 20 * 1024 * 1024  # ... and a 20 MiB payload
MAX_DELETE_KEYS = 500  # DeleteVectors: at most 500 keys a request
MAX_GET_KEYS = 100  # GetVectors: at most 100 keys a request
METADATA_LIMIT = 40 * 1024  # total metadata per vector
FILTERABLE_LIMIT = 2 * 1024  # filterable metadata per vector
NON_FILTERABLE_KEYS = ("text",)  # template.yaml's MetadataConfiguration says the same
_sleep = time.sleep  # the backoff's wait (tests replace it)
THROTTLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "SlowDown",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalServerException",
    "RequestTimeout",
}


def _size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def metadata_for(done: EmbeddedSource, row: int) -> dict[str, Any]:
    """One vector's metadata; the chunk text only when the whole stays under 40 KB."""
    meta = {k: v for k, v in done.row_metadata(row).items() if v is not None}
    # Filterable metadata is capped at 2 KB: a deep, long key keeps its shallowest prefixes (a
    # source_prefix filter below them is still checked on the results).
    while meta["dirs"] and _size(meta) > FILTERABLE_LIMIT - 64:
        meta["dirs"].pop()
    if done.texts is not None:
        with_text = {**meta, "text": done.texts[row]}
        if _size(with_text) <= METADATA_LIMIT:
            return with_text
    return meta


def put_batches(vectors: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Requests of at most 500 vectors and 20 MiB (the request's JSON, with room to spare)."""
    batch: list[dict[str, Any]] = []
    size = 0
    budget = MAX_PUT_BYTES - 64 * 1024  # the envelope: names, brackets
    for vector in vectors:
        n = _size(vector) + 1
        if batch and (len(batch) >= MAX_VECTORS_PER_PUT or size + n > budget):
            yield batch
            batch, size = [], 0
        batch.append(vector)
        size += n
    if batch:
        yield batch


def _error_code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_throttle(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        return code in THROTTLE_CODES or status in (429, 500, 502, 503, 504)
    return isinstance(exc, (BotoCoreError, OSError))


def with_backoff(
    call: Callable[[], Any],
    what: str,
    attempts: int = 6,
    base: float = 0.2,
    cap: float = 8.0,
    sleep: Callable[[float], None] | None = None,
) -> Any:
    """``call()``, retried on throttling with full-jitter exponential backoff (at most
    ``attempts`` tries, ~25 s in all with the defaults); SinkThrottled past them, SinkWriteError
    for any other refusal."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not is_throttle(exc):
                code, _ = _error_code(exc)
                raise SinkWriteError(
                    f"s3vectors: {what} failed ({code or type(exc).__name__}: {exc})"
                ) from exc
            if attempt == attempts - 1:
                raise SinkThrottled(
                    f"s3vectors: {what} still throttled after {attempts} tries ({exc})"
                ) from exc
            (sleep or _sleep)(random.uniform(0, min(cap, base * 2**attempt)))
    raise AssertionError("unreachable")


class S3VectorsSink:
    """Vectors in one S3 Vectors index (handler/sinks/s3vectors.py)."""

    name: ClassVar[str] = "s3vectors"
    search_modes: ClassVar[frozenset[str]] = frozenset({"dense"})

    def __init__(self, bucket: str, index: str, client: Any | None = None) -> None:
        from handler.clients import client as shared

        if not bucket or not index:
            raise ValueError("the s3vectors sink needs VECTOR_BUCKET and VECTOR_INDEX")
        self.bucket, self.index = bucket, index
        self.client = client if client is not None else shared("s3vectors")

    @property
    def where(self) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": self.index}

    def write(self, done: EmbeddedSource, previous: Previous) -> dict[str, Any]:
        ids = done.chunk_ids()
        vectors = [
            {
                "key": ids[row],
                "data": {"float32": [float(x) for x in done.vectors[row]]},
                "metadata": metadata_for(done, row),
            }
            for row in range(len(ids))
        ]
        written = 0
        for batch in put_batches(vectors):
            try:
                with_backoff(
                    lambda b=batch: self.client.put_vectors(**self.where, vectors=b),
                    f"PutVectors of {len(batch)} vectors for {done.key}",
                )
            except SinkThrottled as exc:
                raise SinkThrottled(f"{exc}; {written} of {len(ids)} rows written") from exc
            written += len(batch)
        self._delete_rows(done.key, len(ids), previous.count)
        return {"count": len(ids)}

    def delete(self, source_key: str, previous: Previous) -> None:
        self._delete_rows(source_key, 0, previous.count)

    def _delete_rows(self, source_key: str, start: int, stop: int) -> None:
        keys = [chunk_id(source_key, i) for i in range(start, stop)]
        for i in range(0, len(keys), MAX_DELETE_KEYS):
            part = keys[i : i + MAX_DELETE_KEYS]
            with_backoff(
                lambda p=part: self.client.delete_vectors(**self.where, keys=p),
                f"DeleteVectors of {len(part)} keys for {source_key}",
            )

    # ---- search --------------------------------------------------------------------------------
    def search_dense(
        self, vector: np.ndarray, limit: int, source_prefix: str | None = None
    ) -> list[Hit]:
        """QueryVectors: cosine distance -> score 1 - distance, best first."""
        request: dict[str, Any] = {
            **self.where,
            "topK": max(1, min(MAX_TOP_K, limit)),
            "queryVector": {"float32": [float(x) for x in vector]},
            "returnMetadata": True,
            "returnDistance": True,
        }
        if source_prefix:
            # The longest "/"-ending part of the prefix is a server-side filter; the rest of it is
            # checked here (S3 Vectors has no prefix operator).
            head = source_prefix.rsplit("/", 1)[0] + "/" if "/" in source_prefix else ""
            if head:
                request["filter"] = {"dirs": {"$eq": head}}
            if head != source_prefix:
                request["topK"] = MAX_TOP_K
        response = with_backoff(lambda: self.client.query_vectors(**request), "QueryVectors")
        hits = []
        for item in response.get("vectors", []):
            meta = item.get("metadata") or {}
            source_key = str(meta.get("source_key", item["key"].rsplit("#", 1)[0]))
            if source_prefix and not source_key.startswith(source_prefix):
                continue
            hits.append(
                Hit(
                    id=item["key"],
                    score=1.0 - float(item.get("distance", 1.0)),
                    source_key=source_key,
                    start=meta.get("start"),
                    end=meta.get("end"),
                    text=meta.get("text"),
                    doc_id=meta.get("doc_id"),
                )
            )
        return hits[:limit]

    def texts_of(self, ids: list[str]) -> dict[str, str]:
        """GetVectors: the stored chunk texts of ``ids`` (for reranking hits without text)."""
        found: dict[str, str] = {}
        for i in range(0, len(ids), MAX_GET_KEYS):
            response = with_backoff(
                lambda p=ids[i : i + MAX_GET_KEYS]: self.client.get_vectors(
                    **self.where, keys=p, returnMetadata=True
                ),
                "GetVectors",
            )
            for item in response.get("vectors", []):
                text = (item.get("metadata") or {}).get("text")
                if isinstance(text, str):
                    found[item["key"]] = text
        return found
