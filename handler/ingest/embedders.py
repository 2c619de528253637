"""The models an ingested object is embedded with: text as token-aware chunks (dense, sparse when
configured, late interaction when asked), an image as one row; each says what it is (its
identity), so the ledger can tell whether a synced version is still current."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.images import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
)
from handler.ingest.errors import IngestError
from handler.models import MODELS, ModelNotConfiguredError, model_summary
from handler.observability import count, timed
from handler.settings import Settings, model_variable
from handler.sinks import files as files_sink
from handler.sinks.base import (
    ChunkRecord,
    EmbeddedSource,
    ImageRecord,
)
from handler.sparse_vectors import sparse_encoder, sparse_pairs

_CHUNKERS: dict[tuple[str, int, int], Any] = {}


def chunker_for(model: Any, settings: Settings) -> Any:
    from kettle.chunking import TextChunker

    key = (model.model_name, settings.chunk_tokens, settings.chunk_overlap)
    if key not in _CHUNKERS:
        _CHUNKERS[key] = TextChunker.for_encoder(
            model, settings.chunk_tokens, settings.chunk_overlap, prefix=model.passage_prefix
        )
    return _CHUNKERS[key]


def not_configured(kind: str, settings: Settings, exc: Exception) -> IngestError:
    """The reason for the dead-letter queue: "no image model configured (KETTLE_IMAGE_MODEL)",
    or why this kettle cannot serve the configured one."""
    if settings.models[kind]:
        return IngestError("model_not_configured", str(exc))
    what = kind.replace("_", "-")
    return IngestError(
        "model_not_configured", f"no {what} model configured ({model_variable(kind)})"
    )


@dataclass
class Embedders:
    """The models an ingestion uses and what identifies their output."""

    dense: Any
    sparse: Any | None
    chunker: Any
    late: Any | None = None  # late interaction: per-chunk token vectors (.multi.npz)
    sparse_summary: dict[str, Any] | None = None

    @classmethod
    def load(
        cls,
        settings: Settings,
        model_name: str | None = None,
        multi: bool = False,
        multi_model: str | None = None,
    ) -> Embedders:
        """The dense model (``model_name`` or the configured one), the sparse encoder when
        configured and, with ``multi``, the late-interaction model."""
        late = None
        if multi:
            try:
                late = MODELS.get("late_interaction", settings, multi_model)
            except ModelNotConfiguredError as exc:
                raise not_configured("late_interaction", settings, exc) from None
            except Exception as exc:
                raise IngestError(
                    "model_error", f"late-interaction model unavailable: {exc}"
                ) from None
        try:
            dense = MODELS.get("dense", settings, model_name)
            sparse, summary = sparse_encoder(settings)
            return cls(dense, sparse, chunker_for(dense, settings), late, summary)
        except Exception as exc:
            raise IngestError("model_error", f"model unavailable: {exc}") from None

    @property
    def model(self) -> dict[str, Any]:
        return model_summary(self.dense)

    @property
    def multi_model(self) -> dict[str, Any] | None:
        return None if self.late is None else model_summary(self.late)

    @property
    def chunking(self) -> dict[str, Any]:
        return {"chunk_tokens": self.chunker.chunk_tokens, "overlap": self.chunker.overlap}

    def identity(self, source: dict[str, Any]) -> dict[str, Any]:
        return files_sink.identity(
            source, self.model, self.chunking, self.sparse_summary, self.multi_model
        )

    def embed(
        self, docs: Iterable[tuple[str, str]], source_key: str, source: dict[str, Any]
    ) -> EmbeddedSource:
        """Chunk every document, embed the chunks (dense, and sparse when configured)."""
        records: list[ChunkRecord] = []
        texts: list[str] = []
        doc_count = 0
        for doc_id, text in docs:
            doc_count += 1
            for chunk in self.chunker.chunks(text):
                records.append(ChunkRecord.of(doc_id, chunk.index, source_key, chunk))
                texts.append(chunk.text)
        try:
            with timed("InferenceLatency"):
                dim = self.dense.embedding_size
                rows = list(self.dense.passage_embed(texts)) if texts else []
                vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
                sparse = sparse_pairs(self.sparse, texts) if self.sparse is not None else None
                multi = None
                if self.late is not None:
                    multi = list(self.late.embed(texts)) if texts else []
        except Exception as exc:
            raise IngestError("model_error", f"model error: {type(exc).__name__}: {exc}") from exc
        count(Texts=len(texts), Tokens=sum(r.tokens for r in records))
        return EmbeddedSource(
            source=source,
            model=self.model,
            chunking=self.chunking,
            vectors=vectors.astype(np.float32, copy=False),
            records=records,
            documents=doc_count,
            sparse_model=self.sparse_summary,
            sparse=sparse,
            multi_model=self.multi_model,
            multi=multi,
            texts=texts,
        )


IMAGE_CHUNKING = {"unit": "image"}  # an image is one row: no chunking


@dataclass
class ImageEmbedder:
    """The image model an image object goes through, and what identifies its output."""

    image: Any

    @classmethod
    def load(cls, settings: Settings) -> ImageEmbedder:
        try:
            return cls(MODELS.get("image", settings))
        except ModelNotConfiguredError as exc:
            raise not_configured("image", settings, exc) from None
        except Exception as exc:
            raise IngestError("model_error", f"image model unavailable: {exc}") from None

    @property
    def model(self) -> dict[str, Any]:
        return model_summary(self.image)

    def identity(self, source: dict[str, Any]) -> dict[str, Any]:
        return files_sink.identity(source, self.model, IMAGE_CHUNKING, None)

    def embed(
        self, raw: bytes, source_key: str, source: dict[str, Any], settings: Settings
    ) -> EmbeddedSource:
        """Decode the bytes (undecodable / too_large) and embed them: one unit row."""
        from kettle.pooling import normalize

        try:
            image = decode_image(raw, source_key, settings.max_image_pixels)
        except ImageTooLargeError as exc:
            raise IngestError("too_large", str(exc)) from None
        except ImageDecodeError as exc:
            raise IngestError("undecodable", str(exc)) from None
        record = ImageRecord(
            id=source_key,
            source_key=source_key,
            sha256=hashlib.sha256(raw).hexdigest(),
            width=image.width,
            height=image.height,
            format=image.format,
        )
        try:
            with timed("InferenceLatency"):
                vectors = np.stack(list(self.image.embed([image]))).astype(np.float32, copy=False)
        except Exception as exc:
            raise IngestError("model_error", f"model error: {type(exc).__name__}: {exc}") from exc
        if not self.image.manifest.normalize:
            vectors = normalize(vectors)
        count(Images=1)
        return EmbeddedSource(
            source=source,
            model=self.model,
            chunking=IMAGE_CHUNKING,
            vectors=vectors,
            records=[record],
            documents=1,
        )
