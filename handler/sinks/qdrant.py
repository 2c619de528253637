"""The ``qdrant`` sink: a Qdrant collection through qdrant-client (the runtime layer's optional
``EXTRAS=qdrant``; the default layer does not carry it).

Where: QDRANT_URL (a server; its API key from QDRANT_API_KEY, a Secrets Manager secret ARN or an
SSM SecureString parameter name, never the key itself) or QDRANT_PATH (qdrant-client's embedded
local mode: a folder, what the tests and ``make serve`` use). QDRANT_COLLECTION names the
collection (default "kettle"); it is created on first write with the named vectors ``dense``
(cosine, the dense model's dimension) and, when sparse vectors are configured, ``sparse`` (BM25
with Qdrant's IDF modifier, or SPLADE's as they are). Point id = UUID5 of the chunk id; the payload
is the s3vectors sink's metadata plus ``row`` and the chunk text.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, ClassVar

import numpy as np

from handler.sinks.base import (
    EmbeddedSource,
    Hit,
    Previous,
    SinkThrottled,
    SinkWriteError,
    chunk_id,
    point_id,
)
from handler.sinks.s3vectors import prefix_dirs

UPSERT_BATCH = 256
_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def resolve_api_key(reference: str) -> str | None:
    """QDRANT_API_KEY -> the key: a Secrets Manager ARN (SecretString) or an SSM parameter name
    or ARN (decrypted); empty: no key."""
    if not reference:
        return None
    from handler.clients import client

    if reference.startswith("arn:aws:secretsmanager:"):
        return str(client("secretsmanager").get_secret_value(SecretId=reference)["SecretString"])
    name = (
        reference.split(":parameter", 1)[1] if reference.startswith("arn:aws:ssm:") else reference
    )
    answer = client("ssm").get_parameter(Name=name, WithDecryption=True)
    return str(answer["Parameter"]["Value"])


def qdrant_client(url: str = "", path: str = "", api_key_ref: str = "") -> Any:
    """One client per process and location (local mode holds a lock on its folder)."""
    key = (url, path)
    if key not in _clients:
        with _lock:
            if key not in _clients:
                try:
                    from qdrant_client import QdrantClient
                except ImportError as exc:
                    raise RuntimeError(
                        "the qdrant sink needs qdrant-client: build the runtime layer with "
                        "EXTRAS=qdrant (pip install qdrant-client)"
                    ) from exc
                if path:
                    _clients[key] = QdrantClient(path=path)
                elif url:
                    _clients[key] = QdrantClient(url=url, api_key=resolve_api_key(api_key_ref))
                else:
                    raise ValueError("the qdrant sink needs QDRANT_URL or QDRANT_PATH")
    return _clients[key]


def close_clients() -> None:
    """Close every client (tests; local mode releases its folder)."""
    with _lock:
        for c in _clients.values():
            c.close()
        _clients.clear()


def _payload(done: EmbeddedSource, row: int) -> dict[str, Any]:
    record = done.records[row]
    source = done.source
    payload = {
        "chunk_id": chunk_id(done.key, row),
        "row": row,
        "source_key": done.key,
        "start": getattr(record, "start", None),
        "end": getattr(record, "end", None),
        "doc_id": getattr(record, "doc_id", record.id),
        "model": done.model.get("name"),
        "fingerprint": done.model.get("fingerprint"),
        "version": source.get("version_id") or source.get("etag") or source.get("sha256"),
        "etag": source.get("etag"),
        "dirs": prefix_dirs(done.key),
        "text": done.texts[row] if done.texts is not None else None,
    }
    return payload


class QdrantSink:
    """Points in one Qdrant collection (handler/sinks/qdrant.py)."""

    name: ClassVar[str] = "qdrant"
    search_modes: ClassVar[frozenset[str]] = frozenset({"dense", "sparse", "hybrid"})

    def __init__(
        self,
        collection: str,
        url: str = "",
        path: str = "",
        api_key_ref: str = "",
        sparse_idf: bool = False,
        client: Any | None = None,
    ) -> None:
        self.collection = collection
        self.sparse_idf = sparse_idf
        self.client = client if client is not None else qdrant_client(url, path, api_key_ref)

    # ---- the collection ------------------------------------------------------------------------
    def ensure_collection(self, dim: int, sparse: bool) -> None:
        from qdrant_client import models

        if self.client.collection_exists(self.collection):
            return
        sparse_config = None
        if sparse:
            modifier = models.Modifier.IDF if self.sparse_idf else None
            sparse_config = {"sparse": models.SparseVectorParams(modifier=modifier)}
        self.client.create_collection(
            self.collection,
            vectors_config={
                "dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)
            },
            sparse_vectors_config=sparse_config,
        )
        with warnings.catch_warnings():  # local mode: "payload indexes have no effect"
            warnings.simplefilter("ignore", UserWarning)
            for field in ("source_key", "dirs"):
                self.client.create_payload_index(
                    self.collection, field, models.PayloadSchemaType.KEYWORD
                )

    def has_sparse(self) -> bool:
        if not self.client.collection_exists(self.collection):
            return False
        info = self.client.get_collection(self.collection)
        return bool(info.config.params.sparse_vectors)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if status in (429, 502, 503, 504) or isinstance(exc, (ConnectionError, TimeoutError)):
                raise SinkThrottled(f"qdrant: {what}: {exc}") from exc
            raise SinkWriteError(f"qdrant: {what} failed: {type(exc).__name__}: {exc}") from exc

    def _source_filter(self, source_key: str, from_row: int = 0) -> Any:
        from qdrant_client import models

        must: list[Any] = [
            models.FieldCondition(key="source_key", match=models.MatchValue(value=source_key))
        ]
        if from_row:
            must.append(models.FieldCondition(key="row", range=models.Range(gte=from_row)))
        return models.Filter(must=must)

    # ---- writes --------------------------------------------------------------------------------
    def write(self, done: EmbeddedSource, previous: Previous) -> dict[str, Any]:
        from qdrant_client import models

        self._call(
            "create the collection",
            self.ensure_collection,
            done.vectors.shape[1],
            done.sparse is not None,
        )
        ids = done.chunk_ids()
        points = []
        for row, cid in enumerate(ids):
            vector: dict[str, Any] = {"dense": done.vectors[row].tolist()}
            if done.sparse is not None:
                indices, values = done.sparse[row]
                vector["sparse"] = models.SparseVector(indices=list(indices), values=list(values))
            points.append(
                models.PointStruct(id=point_id(cid), vector=vector, payload=_payload(done, row))
            )
        for i in range(0, len(points), UPSERT_BATCH):
            self._call(
                f"upsert {done.key}",
                self.client.upsert,
                self.collection,
                points[i : i + UPSERT_BATCH],
                wait=True,
            )
        # Rows past the new count belong to an older, longer version.
        if self.client.collection_exists(self.collection):
            selector = models.FilterSelector(filter=self._source_filter(done.key, len(ids)))
            self._call(
                f"delete old rows of {done.key}",
                self.client.delete,
                self.collection,
                selector,
                wait=True,
            )
        return {"count": len(ids)}

    def delete(self, source_key: str, previous: Previous) -> None:
        from qdrant_client import models

        if not self.client.collection_exists(self.collection):
            return
        selector = models.FilterSelector(filter=self._source_filter(source_key))
        self._call(f"delete {source_key}", self.client.delete, self.collection, selector, wait=True)

    def count(self, source_key: str | None = None) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        flt = self._source_filter(source_key) if source_key else None
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    # ---- search --------------------------------------------------------------------------------
    def _prefix_filter(self, source_prefix: str | None) -> Any:
        from qdrant_client import models

        if not source_prefix or "/" not in source_prefix:
            return None
        head = source_prefix.rsplit("/", 1)[0] + "/"
        return models.Filter(
            must=[models.FieldCondition(key="dirs", match=models.MatchValue(value=head))]
        )

    def search(
        self,
        mode: str,
        limit: int,
        dense: np.ndarray | None = None,
        sparse: tuple[list[int], list[float]] | None = None,
        candidates: int | None = None,
        source_prefix: str | None = None,
    ) -> list[Hit]:
        """dense / sparse nearest points, or hybrid: both as prefetches fused server-side (RRF)."""
        from qdrant_client import models

        if not self.client.collection_exists(self.collection):
            return []
        flt = self._prefix_filter(source_prefix)
        exact_prefix = bool(source_prefix) and not source_prefix.endswith("/")
        fetch = max(limit, candidates or 0) * (4 if exact_prefix else 1)
        sparse_vector = None
        if sparse is not None:
            sparse_vector = models.SparseVector(indices=list(sparse[0]), values=list(sparse[1]))
        kwargs: dict[str, Any] = {"limit": fetch, "with_payload": True, "query_filter": flt}
        if mode == "dense":
            kwargs.update(query=np.asarray(dense, np.float32).tolist(), using="dense")
        elif mode == "sparse":
            kwargs.update(query=sparse_vector, using="sparse")
        else:
            per = max(fetch, candidates or 0)
            kwargs.update(
                prefetch=[
                    models.Prefetch(
                        query=np.asarray(dense, np.float32).tolist(),
                        using="dense",
                        limit=per,
                        filter=flt,
                    ),
                    models.Prefetch(query=sparse_vector, using="sparse", limit=per, filter=flt),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
            )
        points = self.client.query_points(self.collection, **kwargs).points
        hits = []
        for p in points:
            payload = p.payload or {}
            source_key = str(payload.get("source_key", ""))
            if source_prefix and not source_key.startswith(source_prefix):
                continue
            hits.append(
                Hit(
                    id=str(payload.get("chunk_id", p.id)),
                    score=float(p.score),
                    source_key=source_key,
                    start=payload.get("start"),
                    end=payload.get("end"),
                    text=payload.get("text"),
                    doc_id=payload.get("doc_id"),
                )
            )
        return hits[:fetch]
