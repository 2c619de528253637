"""Where embedded rows go: one module per sink, chosen by VECTOR_SINK (a comma list).

    files      .npy + .jsonl + manifest per source in the output bucket (the default)
    s3vectors  Amazon S3 Vectors (VECTOR_BUCKET, VECTOR_INDEX), boto3 only
    qdrant     a Qdrant collection (QDRANT_URL + QDRANT_API_KEY, or QDRANT_PATH: local mode)

Adding a sink is adding one module with a class that implements handler.sinks.base.Sink and one
line in SINKS.
"""

from __future__ import annotations

import importlib
from typing import Any

from handler.settings import Settings
from handler.sinks.base import (
    EmbeddedSource,
    Hit,
    Previous,
    Sink,
    SinkThrottled,
    SinkWriteError,
    chunk_id,
    point_id,
)

# name -> (module, class)
SINKS: dict[str, tuple[str, str]] = {
    "files": ("handler.sinks.files", "FilesSink"),
    "s3vectors": ("handler.sinks.s3vectors", "S3VectorsSink"),
    "qdrant": ("handler.sinks.qdrant", "QdrantSink"),
}


def open_sink(
    name: str, settings: Settings, output_bucket: str = "", output_prefix: str = ""
) -> Any:
    """The sink ``name`` configured from ``settings`` (the files sink writes to the bucket and
    prefix given, else OUTPUT_BUCKET / OUTPUT_PREFIX)."""
    module, cls = SINKS[name]
    sink_class = getattr(importlib.import_module(module), cls)
    if name == "files":
        return sink_class(
            output_bucket or settings.output_bucket, output_prefix or settings.output_prefix
        )
    if name == "s3vectors":
        return sink_class(settings.vector_bucket, settings.vector_index)
    return sink_class(
        settings.qdrant_collection,
        url=settings.qdrant_url,
        path=settings.qdrant_path,
        api_key_ref=settings.qdrant_api_key,
        sparse_idf=settings.sparse_vectors == "bm25",
    )


def open_sinks(settings: Settings, output_bucket: str = "", output_prefix: str = "") -> list[Any]:
    return [open_sink(n, settings, output_bucket, output_prefix) for n in settings.vector_sinks]


__all__ = [
    "SINKS",
    "EmbeddedSource",
    "Hit",
    "Previous",
    "Sink",
    "SinkThrottled",
    "SinkWriteError",
    "chunk_id",
    "open_sink",
    "open_sinks",
    "point_id",
]
