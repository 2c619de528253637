"""The handler's configuration, read from the environment (template.yaml sets it).

Read per invocation, not at import, so a test or `make serve` can change it without reloading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# ---- the kind table (API side) -------------------------------------------------------------------
Kind = Literal["dense", "sparse", "rerank", "image", "late_interaction"]
KINDS: tuple[Kind, ...] = ("dense", "sparse", "rerank", "image", "late_interaction")


def model_variable(kind: str) -> str:
    """The environment variable naming the model that serves ``kind``: KETTLE_<KIND>_MODEL, and
    KETTLE_MODEL for dense (the name every deployment already sets)."""
    return "KETTLE_MODEL" if kind == "dense" else f"KETTLE_{kind.upper()}_MODEL"


DEFAULT_MODELS_DIR = "/opt/models"  # where the model layer is mounted
DEFAULT_MAX_TEXTS = 1024
DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
# Text ingestion's end-to-end rate with the default model on the ingest function's CPUs (GetObject,
# chunking, MiniLM, the files sink, the ledger), and so the largest object that syncs within its
# 300 s timeout with a fifth left over: bench/ingest_rate.py measures both (README, "S3 ingestion").
DEFAULT_INGEST_BYTES_PER_SECOND = 16_000
DEFAULT_MAX_OBJECT_BYTES = 3_840_000  # 16,000 B/s x 240 s
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # decoded width x height; a 50 MP image is ~150 MB as RGB
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_CHUNK_OVERLAP = 32
# /search's fixed limits (handler.schemas' SearchRequest holds a body to them)
MAX_TOP_K = 100  # S3 Vectors' QueryVectors topK limit; Qdrant shares it here
MAX_CANDIDATES = 1000
MAX_QUERY_CHARS = 8192


class SettingsError(ValueError):
    """An environment variable with a value the handler cannot use."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"${name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"${name} must be at least {minimum}, got {value}")
    return value


def _str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _names(name: str) -> tuple[str, ...]:
    """A comma- or space-separated list (empty entries dropped)."""
    return tuple(p for p in os.environ.get(name, "").replace(",", " ").split() if p)


@dataclass(frozen=True)
class Settings:
    """Everything the handler reads from its environment."""

    models: Mapping[str, str]  # kind -> the configured model name ("" when none): one table
    models_dir: str
    threads: int | None
    memory_mb: int | None
    max_texts: int
    max_request_bytes: int
    max_object_bytes: int
    max_image_bytes: int
    max_image_pixels: int
    image_buckets: tuple[str, ...]
    chunk_tokens: int
    chunk_overlap: int
    input_prefix: str
    output_bucket: str
    output_prefix: str
    dlq_url: str
    # MAX_RECEIVE_COUNT: the ingest queue's maxReceiveCount (the template sets both from one
    # value); on that receive a failure is dead-lettered by kettle, with its reason, before SQS's
    # redrive would move the message silently. 0: unknown, every failure is retried.
    max_receive_count: int = 0
    # INGEST_BYTES_PER_SECOND: what an object's sync is expected to take, size / rate; an
    # invocation that has synced an object already leaves one that would not fit its remaining
    # time to another invocation.
    ingest_bytes_per_second: int = DEFAULT_INGEST_BYTES_PER_SECOND
    # ---- vector sinks and search (handler/sinks/, handler/search.py) --------------------------
    vector_sinks: tuple[str, ...] = ("files",)  # VECTOR_SINK: files, s3vectors, qdrant (a list)
    vector_bucket: str = ""  # VECTOR_BUCKET: the S3 Vectors bucket
    vector_index: str = ""  # VECTOR_INDEX: the S3 Vectors index
    qdrant_url: str = ""  # QDRANT_URL: a Qdrant server
    qdrant_path: str = ""  # QDRANT_PATH: qdrant-client's embedded local mode (a folder)
    qdrant_api_key: str = ""  # QDRANT_API_KEY: a Secrets Manager ARN / SSM name, not the key
    qdrant_collection: str = "kettle"  # QDRANT_COLLECTION
    sparse_vectors: str = ""  # SPARSE_VECTORS: "" (none), "model" (KETTLE_SPARSE_MODEL), "bm25"

    @property
    def model(self) -> str:
        """The dense model (KETTLE_MODEL): every deployment serves one."""
        return self.models["dense"]

    @classmethod
    def from_env(cls) -> Settings:
        from kettle.registry import DEFAULT_MODEL  # light: the registry is plain data

        threads = _int("KETTLE_THREADS", 0, minimum=0)
        memory = _int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, minimum=0)
        chunk_tokens = _int("CHUNK_TOKENS", DEFAULT_CHUNK_TOKENS, minimum=1)
        overlap = _int("CHUNK_OVERLAP", DEFAULT_CHUNK_OVERLAP, minimum=0)
        if overlap >= chunk_tokens:
            raise SettingsError(
                f"$CHUNK_OVERLAP ({overlap}) must be smaller than $CHUNK_TOKENS ({chunk_tokens})"
            )
        return cls(
            models={
                kind: _str(model_variable(kind), DEFAULT_MODEL if kind == "dense" else "")
                for kind in KINDS
            },
            models_dir=_str("KETTLE_MODELS_DIR", DEFAULT_MODELS_DIR),
            threads=threads or None,
            memory_mb=memory or None,
            max_texts=_int("MAX_TEXTS", DEFAULT_MAX_TEXTS, minimum=1),
            max_request_bytes=_int("MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1),
            max_object_bytes=_int("MAX_OBJECT_BYTES", DEFAULT_MAX_OBJECT_BYTES, minimum=1),
            max_image_bytes=_int("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES, minimum=1),
            max_image_pixels=_int("MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, minimum=1),
            # Buckets whose objects /embed_image may read by s3:// URI (the template: the input
            # bucket, which is also all the API function's role may read).
            image_buckets=_names("IMAGE_BUCKETS"),
            chunk_tokens=chunk_tokens,
            chunk_overlap=overlap,
            input_prefix=_str("INPUT_PREFIX"),
            output_bucket=_str("OUTPUT_BUCKET"),
            output_prefix=_str("OUTPUT_PREFIX", "embeddings/"),
            dlq_url=_str("DLQ_URL"),
            max_receive_count=_int("MAX_RECEIVE_COUNT", 0, minimum=0),
            ingest_bytes_per_second=_int(
                "INGEST_BYTES_PER_SECOND", DEFAULT_INGEST_BYTES_PER_SECOND, minimum=1
            ),
            **_vector_settings(),
        )


SINK_NAMES = ("files", "s3vectors", "qdrant")


def _vector_settings() -> dict[str, object]:
    """The sink and search block of Settings (one place for their variables)."""
    sinks = tuple(dict.fromkeys(n.lower() for n in _names("VECTOR_SINK"))) or ("files",)
    for name in sinks:
        if name not in SINK_NAMES:
            raise SettingsError(f"$VECTOR_SINK: {name!r} is not one of {', '.join(SINK_NAMES)}")
    sparse = _str("SPARSE_VECTORS").lower()
    if sparse not in ("", "model", "bm25"):
        raise SettingsError(f'$SPARSE_VECTORS must be "model", "bm25" or empty, not {sparse!r}')
    if not sparse and _str("KETTLE_SPARSE_MODEL"):
        sparse = "model"
    return {
        "vector_sinks": sinks,
        "vector_bucket": _str("VECTOR_BUCKET"),
        "vector_index": _str("VECTOR_INDEX"),
        "qdrant_url": _str("QDRANT_URL"),
        "qdrant_path": _str("QDRANT_PATH"),
        "qdrant_api_key": _str("QDRANT_API_KEY"),
        "qdrant_collection": _str("QDRANT_COLLECTION", "kettle"),
        "sparse_vectors": sparse,
    }
