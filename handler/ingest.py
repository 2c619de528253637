"""S3 ingestion: object -> documents -> token-aware chunks -> vectors -> outputs in S3.

An S3 ObjectCreated notification arrives directly or inside an SQS message. Every object ends
embedded, skipped (already embedded: same etag/version, model fingerprint and chunking), or in the
dead-letter queue with its reason. Through SQS, a transient failure (S3 throttling, a dropped
connection) is reported in batchItemFailures so SQS delivers the message again; a direct event
with one raises, so Lambda's asynchronous retries take over.

Documents by extension: .txt and .md are one document each (the whole text, UTF-8); .jsonl is
one {"id", "text"} object per line; .json is an array of strings or of {"id", "text"} objects.

Images (.png, .jpg, .jpeg, .webp, .gif, .bmp, or any key whose Content-Type is image/*) go to the
image model (KETTLE_IMAGE_MODEL): one row, the same outputs and the same idempotency; an image that
does not decode, is past MAX_IMAGE_BYTES / MAX_IMAGE_PIXELS, or arrives with no image model
configured goes to the dead-letter queue with the reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from handler import outputs
from handler.clients import client
from handler.images import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    is_image_type,
)
from handler.models import MODELS, ModelNotConfiguredError
from handler.observability import logger, metrics
from handler.settings import Settings, model_variable

TEXT_TYPES = (".txt", ".md")
SUPPORTED = (*TEXT_TYPES, ".jsonl", ".json")
TRANSIENT_S3_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "500",
    "503",
}


# ---- outcomes and failures -----------------------------------------------------------------------
class IngestError(Exception):
    """An object that cannot be embedded as it is: it goes to the dead-letter queue."""

    code = "ingest_error"


class UnsupportedTypeError(IngestError):
    code = "unsupported_type"


class TooLargeError(IngestError):
    code = "too_large"


class UndecodableError(IngestError):
    code = "undecodable"


class BadDocumentError(IngestError):
    code = "bad_document"


class ObjectGoneError(IngestError):
    code = "object_unavailable"


class ModelFailureError(IngestError):
    code = "model_error"


class BadEventError(IngestError):
    code = "bad_event"


class NotConfiguredError(IngestError):
    """The object needs a kind of model this deployment has not configured."""

    code = "model_not_configured"


class TransientError(Exception):
    """A failure worth another try (the message goes back to the queue)."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": outputs.normalize_etag(self.etag),
            "size": self.size,
        }


@dataclass(frozen=True)
class Outcome:
    status: str  # "embedded" | "skipped" | "ignored"
    key: str
    count: int = 0
    manifest_key: str | None = None
    reason: str | None = None


# ---- documents -----------------------------------------------------------------------------------
def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UndecodableError(
            f"{where} is not UTF-8 text (bad byte at offset {exc.start})"
        ) from None


def documents(body: Any, key: str) -> Iterator[tuple[str, str]]:
    """(document id, text) pairs of an object body (a file-like with read() / iter_lines())."""
    kind = extension(key)
    if kind in TEXT_TYPES:
        yield key, _utf8(body.read(), key)
    elif kind == ".jsonl":
        lines = body.iter_lines() if hasattr(body, "iter_lines") else iter(body.read().splitlines())
        for number, raw in enumerate(lines, start=1):
            line = _utf8(raw, f"line {number}").strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise BadDocumentError(f"line {number} is not valid JSON ({exc})") from None
            yield _document(item, f"line {number}", str(number))
    elif kind == ".json":
        text = _utf8(body.read(), key)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadDocumentError(f"{key} is not valid JSON ({exc})") from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise BadDocumentError(
                f"{key}: a .json object must be an array of strings or of {{id, text}} objects"
            )
        for index, item in enumerate(data):
            yield _document(item, f"item {index}", str(index))
    else:
        raise UnsupportedTypeError(
            f"{key}: {kind or 'no extension'} is not one of {', '.join(SUPPORTED)}"
        )


def _document(item: Any, where: str, default_id: str) -> tuple[str, str]:
    if isinstance(item, str):
        return default_id, item
    if not isinstance(item, dict):
        raise BadDocumentError(f"{where} is {type(item).__name__}, not a string or {{id, text}}")
    text = item.get("text")
    if not isinstance(text, str):
        raise BadDocumentError(f'{where} has no "text" string')
    doc_id = item.get("id", default_id)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise BadDocumentError(f'{where}: "id" must be a string or an integer')
    return str(doc_id), text


# ---- embedding -----------------------------------------------------------------------------------
_CHUNKERS: dict[tuple[str, int, int], Any] = {}


def chunker_for(model: Any, settings: Settings) -> Any:
    from kettle.chunking import TextChunker

    key = (model.model_name, settings.chunk_tokens, settings.chunk_overlap)
    if key not in _CHUNKERS:
        _CHUNKERS[key] = TextChunker.for_encoder(
            model, settings.chunk_tokens, settings.chunk_overlap, prefix=model.passage_prefix
        )
    return _CHUNKERS[key]


def _not_configured(kind: str, settings: Settings, exc: Exception) -> NotConfiguredError:
    """The reason for the dead-letter queue: "no image model configured (KETTLE_IMAGE_MODEL)",
    or why this kettle cannot serve the configured one."""
    if settings.models[kind]:
        return NotConfiguredError(str(exc))
    what = kind.replace("_", "-")
    return NotConfiguredError(f"no {what} model configured ({model_variable(kind)})")


def _model_summary(model: Any, with_dim: bool = True) -> dict[str, Any]:
    m = model.manifest
    summary = {"name": m.name, "kind": m.kind, "fingerprint": m.fingerprint}
    return {**summary, "dim": m.dim} if with_dim else summary


@dataclass
class Embedders:
    """The models an ingestion uses and what identifies their output."""

    dense: Any
    sparse: Any | None
    chunker: Any
    late: Any | None = None  # late interaction: per-chunk token vectors (.multi.npz)

    @classmethod
    def load(
        cls,
        settings: Settings,
        model_name: str | None = None,
        multi: bool = False,
        multi_model: str | None = None,
    ) -> Embedders:
        """The dense model (``model_name`` or the configured one), the sparse one when configured
        and, with ``multi``, the late-interaction model (``multi_model`` or the configured one)."""
        late = None
        if multi:
            try:
                late = MODELS.get("late_interaction", settings, multi_model)
            except ModelNotConfiguredError as exc:
                raise _not_configured("late_interaction", settings, exc) from None
            except Exception as exc:
                raise ModelFailureError(f"late-interaction model unavailable: {exc}") from None
        try:
            dense = MODELS.get("dense", settings, model_name)
            sparse = MODELS.get("sparse", settings) if settings.models["sparse"] else None
            return cls(dense, sparse, chunker_for(dense, settings), late)
        except Exception as exc:
            raise ModelFailureError(f"model unavailable: {exc}") from None

    @property
    def model(self) -> dict[str, Any]:
        return _model_summary(self.dense)

    @property
    def sparse_model(self) -> dict[str, Any] | None:
        return None if self.sparse is None else _model_summary(self.sparse, with_dim=False)

    @property
    def multi_model(self) -> dict[str, Any] | None:
        return None if self.late is None else _model_summary(self.late)

    @property
    def chunking(self) -> dict[str, Any]:
        return {"chunk_tokens": self.chunker.chunk_tokens, "overlap": self.chunker.overlap}

    def identity(self, source: dict[str, Any]) -> dict[str, Any]:
        return outputs.identity(
            source, self.model, self.chunking, self.sparse_model, self.multi_model
        )

    def embed(
        self, docs: Iterable[tuple[str, str]], source_key: str, source: dict[str, Any]
    ) -> outputs.EmbeddedSource:
        """Chunk every document, embed the chunks (dense, and sparse when configured)."""
        records: list[outputs.ChunkRecord] = []
        texts: list[str] = []
        doc_count = 0
        for doc_id, text in docs:
            doc_count += 1
            for chunk in self.chunker.chunks(text):
                records.append(outputs.ChunkRecord.of(doc_id, chunk.index, source_key, chunk))
                texts.append(chunk.text)
        started = time.perf_counter()
        try:
            dim = self.dense.embedding_size
            rows = list(self.dense.passage_embed(texts)) if texts else []
            vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
            sparse = None
            if self.sparse is not None:
                embed = getattr(self.sparse, "passage_embed", self.sparse.embed)
                sparse = [
                    (np.asarray(e.indices).tolist(), np.asarray(e.values).tolist())
                    for e in (embed(texts) if texts else [])
                ]
            multi = None
            if self.late is not None:
                multi = list(self.late.embed(texts)) if texts else []
        except Exception as exc:
            raise ModelFailureError(f"model error: {type(exc).__name__}: {exc}") from exc
        tokens = sum(r.tokens for r in records)
        metrics.add_metric(name="Texts", unit=MetricUnit.Count, value=len(texts))
        metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=tokens)
        metrics.add_metric(
            name="InferenceLatency",
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )
        return outputs.EmbeddedSource(
            source=source,
            model=self.model,
            chunking=self.chunking,
            vectors=vectors.astype(np.float32, copy=False),
            records=records,
            documents=doc_count,
            sparse_model=self.sparse_model,
            sparse=sparse,
            multi_model=self.multi_model,
            multi=multi,
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
            raise _not_configured("image", settings, exc) from None
        except Exception as exc:
            raise ModelFailureError(f"image model unavailable: {exc}") from None

    @property
    def model(self) -> dict[str, Any]:
        return _model_summary(self.image)

    def identity(self, source: dict[str, Any]) -> dict[str, Any]:
        return outputs.identity(source, self.model, IMAGE_CHUNKING, None)

    def embed(
        self, raw: bytes, source_key: str, source: dict[str, Any], settings: Settings
    ) -> outputs.EmbeddedSource:
        """Decode the bytes (UndecodableError / TooLargeError) and embed them: one unit row."""
        from kettle.pooling import normalize

        try:
            image = decode_image(raw, source_key, settings.max_image_pixels)
        except ImageTooLargeError as exc:
            raise TooLargeError(str(exc)) from None
        except ImageDecodeError as exc:
            raise UndecodableError(str(exc)) from None
        record = outputs.ImageRecord(
            id=source_key,
            source_key=source_key,
            sha256=hashlib.sha256(raw).hexdigest(),
            width=image.width,
            height=image.height,
            format=image.format,
        )
        started = time.perf_counter()
        try:
            vectors = np.stack(list(self.image.embed([image]))).astype(np.float32, copy=False)
        except Exception as exc:
            raise ModelFailureError(f"model error: {type(exc).__name__}: {exc}") from exc
        if not self.image.manifest.normalize:
            vectors = normalize(vectors)
        metrics.add_metric(name="Images", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="InferenceLatency",
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )
        return outputs.EmbeddedSource(
            source=source,
            model=self.model,
            chunking=IMAGE_CHUNKING,
            vectors=vectors,
            records=[record],
            documents=1,
        )


# ---- one object ----------------------------------------------------------------------------------
def transient_or_permanent(exc: Exception, ref: ObjectRef) -> Exception:
    """An S3/network failure as TransientError or as the IngestError it really is."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_S3_CODES or status >= 500:
            return TransientError(f"s3://{ref.bucket}/{ref.key}: {code or status}")
        if code in {"NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket"}:
            return ObjectGoneError(f"s3://{ref.bucket}/{ref.key} is gone ({code})")
        return ObjectGoneError(f"s3://{ref.bucket}/{ref.key}: cannot read it ({code})")
    if isinstance(exc, (BotoCoreError, OSError)):
        return TransientError(f"s3://{ref.bucket}/{ref.key}: {type(exc).__name__}: {exc}")
    return exc


def _content_type(ref: ObjectRef) -> str:
    """The object's Content-Type (HEAD), for keys whose extension says nothing."""
    args = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    try:
        return str(client("s3").head_object(**args).get("ContentType") or "")
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc


def embed_object(
    ref: ObjectRef,
    output_bucket: str,
    output_prefix: str,
    settings: Settings,
    model_name: str | None = None,
    multi: bool = False,
    multi_model: str | None = None,
) -> Outcome:
    """Embed one S3 object into ``output_bucket``; IngestError or TransientError when it cannot.

    Text objects go through the dense model (``model_name`` or the configured one; with ``multi``
    the late-interaction model too), images through the configured image model."""
    kind = extension(ref.key)
    if kind in IMAGE_EXTENSIONS:
        return embed_image_object(ref, output_bucket, output_prefix, settings)
    if kind not in SUPPORTED:
        content_type = _content_type(ref)
        if is_image_type(content_type):
            return embed_image_object(ref, output_bucket, output_prefix, settings)
        raise UnsupportedTypeError(
            f"{ref.key}: {kind or 'no extension'} is not one of "
            f"{', '.join(SUPPORTED + IMAGE_EXTENSIONS)}, and its Content-Type "
            f"({content_type or 'none'}) is not image/*"
        )
    if ref.size is not None and ref.size > settings.max_object_bytes:
        raise TooLargeError(
            f"{ref.key} is {ref.size} bytes; at most {settings.max_object_bytes} (MAX_OBJECT_BYTES)"
        )
    embedders = Embedders.load(settings, model_name, multi, multi_model)
    keys = outputs.OutputKeys.for_source(output_prefix, ref.key)
    s3 = client("s3")
    try:
        existing = outputs.read_manifest(s3, output_bucket, keys.manifest)
        # The event names the version: when it is the one embedded, the object need not be read.
        if ref.etag and outputs.is_current(existing, embedders.identity(ref.describe())):
            return Outcome("skipped", ref.key, existing.get("count", 0), keys.manifest)
        args = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            args["VersionId"] = ref.version_id
        response = s3.get_object(**args)
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    size = response.get("ContentLength")
    if size is not None and size > settings.max_object_bytes:
        response["Body"].close()
        raise TooLargeError(
            f"{ref.key} is {size} bytes; at most {settings.max_object_bytes} (MAX_OBJECT_BYTES)"
        )
    version = response.get("VersionId")
    source = ObjectRef(
        ref.bucket,
        ref.key,
        version if version and version != "null" else ref.version_id,
        response.get("ETag") or ref.etag,
        size,
    ).describe()
    # An older event for an object since overwritten: what is there now may be embedded already.
    if outputs.is_current(existing, embedders.identity(source)):
        response["Body"].close()
        return Outcome("skipped", ref.key, existing.get("count", 0), keys.manifest)
    try:
        done = embedders.embed(documents(response["Body"], ref.key), ref.key, source)
    except IngestError:
        raise
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    try:
        manifest = outputs.write(s3, output_bucket, keys, done)
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    return Outcome("embedded", ref.key, manifest["count"], keys.manifest)


def embed_image_object(
    ref: ObjectRef, output_bucket: str, output_prefix: str, settings: Settings
) -> Outcome:
    """Embed one image object (one row); IngestError or TransientError when it cannot."""
    limit = settings.max_image_bytes
    if ref.size is not None and ref.size > limit:
        raise TooLargeError(f"{ref.key} is {ref.size} bytes; at most {limit} (MAX_IMAGE_BYTES)")
    embedder = ImageEmbedder.load(settings)
    keys = outputs.OutputKeys.for_source(output_prefix, ref.key)
    s3 = client("s3")
    try:
        existing = outputs.read_manifest(s3, output_bucket, keys.manifest)
        if ref.etag and outputs.is_current(existing, embedder.identity(ref.describe())):
            return Outcome("skipped", ref.key, existing.get("count", 0), keys.manifest)
        args = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            args["VersionId"] = ref.version_id
        response = s3.get_object(**args)
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    size = response.get("ContentLength")
    if size is not None and size > limit:
        response["Body"].close()
        raise TooLargeError(f"{ref.key} is {size} bytes; at most {limit} (MAX_IMAGE_BYTES)")
    version = response.get("VersionId")
    source = ObjectRef(
        ref.bucket,
        ref.key,
        version if version and version != "null" else ref.version_id,
        response.get("ETag") or ref.etag,
        size,
    ).describe()
    if outputs.is_current(existing, embedder.identity(source)):
        response["Body"].close()
        return Outcome("skipped", ref.key, existing.get("count", 0), keys.manifest)
    try:
        raw = response["Body"].read(limit + 1)
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    if len(raw) > limit:
        raise TooLargeError(f"{ref.key} is over {limit} bytes (MAX_IMAGE_BYTES)")
    done = embedder.embed(raw, ref.key, source, settings)
    try:
        manifest = outputs.write(s3, output_bucket, keys, done)
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    return Outcome("embedded", ref.key, manifest["count"], keys.manifest)


# ---- the dead-letter queue -----------------------------------------------------------------------
def send_to_dlq(settings: Settings, reason: str, code: str, source: str, **details: Any) -> None:
    """Record a failure in the dead-letter queue; TransientError when it cannot be recorded."""
    message = {"reason": reason, "error": code, "source": source, **details}
    message["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if not settings.dlq_url:
        raise TransientError(f"no DLQ_URL to record the failure in: {reason}")
    try:
        client("sqs").send_message(
            QueueUrl=settings.dlq_url,
            MessageBody=json.dumps(message, ensure_ascii=False),
            MessageAttributes={"error": {"DataType": "String", "StringValue": code}},
        )
    except Exception as exc:
        raise TransientError(f"could not send to the dead-letter queue: {exc}") from exc
    metrics.add_metric(name="ObjectsFailed", unit=MetricUnit.Count, value=1)
    logger.warning("sent to the dead-letter queue", extra=message)


# ---- events --------------------------------------------------------------------------------------
def object_refs(s3_event: dict[str, Any]) -> list[ObjectRef]:
    """The objects an S3 notification names (ObjectCreated records only; keys URL-decoded)."""
    refs = []
    for number, record in enumerate(s3_event.get("Records") or []):
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        try:
            bucket = record["s3"]["bucket"]["name"]
            obj = record["s3"]["object"]
            key = unquote_plus(obj["key"])
        except (KeyError, TypeError):
            raise BadEventError(f"Records[{number}] is not an S3 notification record") from None
        size = obj.get("size")
        refs.append(
            ObjectRef(
                bucket,
                key,
                obj.get("versionId") or None,
                obj.get("eTag") or None,
                size if isinstance(size, int) else None,
            )
        )
    return refs


def _process(ref: ObjectRef, settings: Settings, source: str, **details: Any) -> Outcome:
    """One object: embedded/skipped, or recorded in the DLQ; TransientError propagates."""
    output_bucket = settings.output_bucket or ref.bucket
    if settings.input_prefix and not ref.key.startswith(settings.input_prefix):
        return Outcome("ignored", ref.key, reason=f"not under {settings.input_prefix}")
    if output_bucket == ref.bucket and ref.key.startswith(settings.output_prefix):
        return Outcome("ignored", ref.key, reason="an output of this function")
    try:
        outcome = embed_object(ref, output_bucket, settings.output_prefix, settings)
    except IngestError as exc:
        send_to_dlq(settings, str(exc), exc.code, source, **ref.describe(), **details)
        return Outcome("failed", ref.key, reason=str(exc))
    metric = "ObjectsEmbedded" if outcome.status == "embedded" else "ObjectsSkipped"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    logger.info(outcome.status, extra={"key": ref.key, "count": outcome.count})
    return outcome


def handle_s3(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A direct S3 notification: every record processed; raise at the end if any was transient."""
    try:
        refs = object_refs(event)
    except BadEventError as exc:
        send_to_dlq(settings, str(exc), exc.code, "s3", event=event)
        return {"results": [], "failed": 1}
    results, transient = [], []
    for ref in refs:
        try:
            results.append(asdict(_process(ref, settings, "s3")))
        except TransientError as exc:
            transient.append(str(exc))
    if transient:
        raise TransientError("; ".join(transient))
    return {"results": results}


def handle_sqs(event: dict[str, Any], context: Any, settings: Settings) -> dict[str, Any]:
    """SQS messages carrying S3 notifications: a transient failure reports the message in
    batchItemFailures; a permanent one is recorded in the DLQ and the message is done."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: Any) -> list[dict[str, Any]]:
        details = {"message_id": record.message_id}
        try:
            body = json.loads(record.body)
        except (TypeError, ValueError):
            send_to_dlq(
                settings,
                "the SQS message body is not JSON",
                "bad_event",
                "sqs",
                body=record.body,
                **details,
            )
            return []
        if not isinstance(body, dict) or body.get("Event") == "s3:TestEvent":
            return []  # S3's test notification when the queue is wired up
        try:
            refs = object_refs(body)
        except BadEventError as exc:
            send_to_dlq(settings, str(exc), exc.code, "sqs", body=record.body, **details)
            return []
        return [asdict(_process(ref, settings, "sqs", **details)) for ref in refs]

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    for failure in processor.fail_messages:
        logger.warning("will retry", extra={"message_id": failure.message_id})
    return response


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 notifications, direct or in SQS messages."""
    settings = Settings.from_env()
    records = event.get("Records") or []
    if records and all(r.get("eventSource") == "aws:sqs" for r in records):
        return handle_sqs(event, context, settings)
    return handle_s3(event, settings)
