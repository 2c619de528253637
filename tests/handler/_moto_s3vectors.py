"""An exact-cosine QueryVectors for moto's S3 Vectors (moto 5.2.5 stores vectors, never searches).

moto has PutVectors / GetVectors / ListVectors / DeleteVectors over its in-memory index but no
QueryVectors route. :func:`install` adds one to moto itself (a URL path and a response method),
so a boto3 client goes through botocore's real request serializer and response parser: the
request and response shapes are the service model's, not a stub's. Distances are exact cosine
distances (1 - cosine similarity) over every stored vector, nearest first; ``filter`` implements
S3 Vectors' metadata filter operators ($eq, which matches any element of a list value, $ne, $gt,
$gte, $lt, $lte, $in, $nin, $exists, $and, $or, and {"key": value} as $eq).
"""

from __future__ import annotations

import math
from typing import Any

_INSTALLED = []


def _match_value(stored: Any, op: str, wanted: Any) -> bool:
    values = stored if isinstance(stored, list) else [stored]
    if op == "$eq":
        return wanted in values
    if op == "$ne":
        return wanted not in values
    if op == "$in":
        return any(v in wanted for v in values)
    if op == "$nin":
        return not any(v in wanted for v in values)
    if op == "$exists":
        return (stored is not None) == bool(wanted)
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    compare = {
        "$gt": lambda a: a > wanted,
        "$gte": lambda a: a >= wanted,
        "$lt": lambda a: a < wanted,
        "$lte": lambda a: a <= wanted,
    }
    if op in compare:
        return any(compare[op](v) for v in numbers)
    raise ValueError(f"unsupported filter operator {op}")


def matches(metadata: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    if not flt:
        return True
    for key, condition in flt.items():
        if key == "$and":
            if not all(matches(metadata, c) for c in condition):
                return False
        elif key == "$or":
            if not any(matches(metadata, c) for c in condition):
                return False
        elif isinstance(condition, dict):
            for op, wanted in condition.items():
                if not _match_value(metadata.get(key), op, wanted):
                    return False
        elif not _match_value(metadata.get(key), "$eq", condition):
            return False
    return True


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / (na * nb) if na and nb else 1.0


def install() -> None:
    """Add QueryVectors to moto's S3 Vectors (idempotent)."""
    if _INSTALLED:
        return
    from moto.core.responses import ActionResult
    from moto.s3vectors import urls
    from moto.s3vectors.responses import S3VectorsResponse

    def query_vectors(self: S3VectorsResponse) -> ActionResult:
        index_arn = self._get_param("indexArn")
        index_name = self._get_param("indexName")
        bucket = self._get_param("vectorBucketName")
        self._validate_index_params(index_arn, index_name, bucket)
        index = self.s3vectors_backend.get_index(bucket, index_name, index_arn)
        query = self._get_param("queryVector")["float32"]
        top_k = int(self._get_param("topK"))
        flt = self._get_param("filter")
        return_metadata = self._get_bool_param("returnMetadata", False)
        return_distance = self._get_bool_param("returnDistance", False)
        scored = []
        for vector in index.vectors.values():
            if not matches(vector.metadata or {}, flt):
                continue
            scored.append((cosine_distance(query, vector.data["float32"]), vector))
        scored.sort(key=lambda pair: pair[0])
        out = []
        for distance, vector in scored[:top_k]:
            item: dict[str, Any] = {"key": vector.key}
            if return_distance:
                item["distance"] = distance
            if return_metadata:
                item["metadata"] = vector.metadata
            out.append(item)
        return ActionResult({"vectors": out, "distanceMetric": index.distance_metric})

    S3VectorsResponse.query_vectors = query_vectors  # type: ignore[attr-defined]
    urls.url_paths["{0}/QueryVectors$"] = S3VectorsResponse.dispatch
    _INSTALLED.append(True)
