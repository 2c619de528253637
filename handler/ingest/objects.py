"""Reading an S3 object for ingestion: which objects are images, the version an event names
fetched with its size checked first, and S3's failures sorted into transient and permanent."""

from __future__ import annotations

from typing import Any

from handler.clients import client
from handler.images import (
    IMAGE_EXTENSIONS,
    is_image_type,
)
from handler.ingest.documents import SUPPORTED, extension
from handler.ingest.errors import IngestError, TransientError
from handler.ingest.events import ObjectRef

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


def transient_or_permanent(exc: Exception, ref: ObjectRef) -> Exception:
    """An S3/network failure reading ``ref`` as TransientError or the IngestError it really is."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_S3_CODES or status >= 500:
            return TransientError(f"s3://{ref.bucket}/{ref.key}: {code or status}")
        if code in {"NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket"}:
            return IngestError(
                "object_unavailable", f"s3://{ref.bucket}/{ref.key} is gone ({code})"
            )
        return IngestError(
            "object_unavailable", f"s3://{ref.bucket}/{ref.key}: cannot read it ({code})"
        )
    if isinstance(exc, (BotoCoreError, OSError)):
        return TransientError(f"s3://{ref.bucket}/{ref.key}: {type(exc).__name__}: {exc}")
    return exc


def version_args(ref: ObjectRef) -> dict[str, str]:
    args = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    return args


def _content_type(ref: ObjectRef) -> str:
    """The object's Content-Type (HEAD), for keys whose extension says nothing."""
    try:
        return str(client("s3").head_object(**version_args(ref)).get("ContentType") or "")
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc


def is_image(ref: ObjectRef) -> bool:
    """Images by extension, else (an unknown extension) by Content-Type; unsupported_type when
    neither says text nor image."""
    kind = extension(ref.key)
    if kind in IMAGE_EXTENSIONS:
        return True
    if kind in SUPPORTED:
        return False
    content_type = _content_type(ref)
    if is_image_type(content_type):
        return True
    raise IngestError(
        "unsupported_type",
        f"{ref.key}: {kind or 'no extension'} is not one of "
        f"{', '.join(SUPPORTED + IMAGE_EXTENSIONS)}, and its Content-Type "
        f"({content_type or 'none'}) is not image/*",
    )


def too_large(key: str, size: int | None, limit: int, variable: str) -> None:
    if size is not None and size > limit:
        raise IngestError("too_large", f"{key} is {size} bytes; at most {limit} ({variable})")


def fetch(ref: ObjectRef, limit: int, variable: str) -> tuple[Any, dict[str, Any]]:
    """GetObject of the version the event names, size-checked: (response, source description)."""
    too_large(ref.key, ref.size, limit, variable)
    try:
        response = client("s3").get_object(**version_args(ref))
    except Exception as exc:
        raise transient_or_permanent(exc, ref) from exc
    size = response.get("ContentLength")
    if size is not None and size > limit:
        response["Body"].close()
    too_large(ref.key, size, limit, variable)
    version = response.get("VersionId")
    source = ObjectRef(
        ref.bucket,
        ref.key,
        version if version and version != "null" else ref.version_id,
        response.get("ETag") or ref.etag,
        size,
    ).describe()
    return response, source
