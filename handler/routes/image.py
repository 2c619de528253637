"""POST /embed_image: base64 or s3:// images -> one normalised vector each.

Every item is checked before any work (base64 decoded, s3:// URIs held to IMAGE_BUCKETS); images
are decoded one at a time as the model reaches them, so a bad one names its index. botocore is
imported only when an s3:// image is read.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import numpy as np
from aws_lambda_powertools.event_handler.api_gateway import Router

from handler.clients import client
from handler.errors import ApiError
from handler.images import ImageDecodeError, ImageTooLargeError, decode_image
from handler.models import resolve_name
from handler.observability import count, logger, timed
from handler.routes.common import (
    as_list,
    check_count,
    json_floats,
    json_response,
    model_for,
    named,
    responses,
)
from handler.settings import Settings

if TYPE_CHECKING:  # by name: handler.validation checks the body
    from handler.schemas import EmbedImageRequest

router = Router()


_URL_SAFE = str.maketrans("-_", "+/")


def _image_bytes_from_base64(item: str, where: str, settings: Settings) -> bytes:
    """The bytes of a base64 image (standard or URL-safe alphabet, padding optional, a data: URL
    prefix and line breaks allowed); 422 when it is not base64, 413 past MAX_IMAGE_BYTES."""
    data = item
    if data[:5].lower() == "data:":
        head, comma, data = data.partition(",")
        if not comma or not head.lower().endswith(";base64"):
            raise ApiError("invalid_image", f"{where} is a data: URL without base64 data", where)
    compact = "".join(data.split()).translate(_URL_SAFE)
    limit = settings.max_image_bytes
    if len(compact) // 4 * 3 > limit + 3:  # too large before decoding a byte
        raise ApiError(
            "image_too_large",
            f"{where} is about {len(compact) // 4 * 3} bytes; at most {limit} (MAX_IMAGE_BYTES)",
            where,
        )
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            "invalid_image", f"{where} is neither valid base64 nor an s3://bucket/key URI", where
        ) from None
    if len(raw) > limit:
        raise ApiError(
            "image_too_large",
            f"{where} is {len(raw)} bytes; at most {limit} (MAX_IMAGE_BYTES)",
            where,
        )
    return raw


def _s3_location(item: str, where: str, settings: Settings) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI the function may read; 422 malformed, 403 other buckets."""
    bucket, slash, key = item[len("s3://") :].partition("/")
    if not bucket or not slash or not key:
        raise ApiError(
            "invalid_image", f"{where}: an S3 image is s3://bucket/key, got {item!r}", where
        )
    if bucket not in settings.image_buckets:
        allowed = ", ".join(settings.image_buckets)
        which = f"the buckets it may read are: {allowed}" if allowed else "IMAGE_BUCKETS is empty"
        raise ApiError(
            "bucket_not_allowed",
            f"{where}: this function may not read images from bucket {bucket!r}; {which} "
            "(IMAGE_BUCKETS)",
            where,
        )
    return bucket, key


def _image_from_s3(bucket: str, key: str, where: str, settings: Settings) -> bytes:
    """The object's bytes, at most MAX_IMAGE_BYTES; S3's refusals as errors naming ``where``."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri = f"s3://{bucket}/{key}"
    limit = settings.max_image_bytes
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key)
        size = response.get("ContentLength")
        if size is not None and size > limit:
            response["Body"].close()
            raise ApiError(
                "image_too_large",
                f"{where} ({uri}) is {size} bytes; at most {limit} (MAX_IMAGE_BYTES)",
                where,
            )
        raw = response["Body"].read(limit + 1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}:
            raise ApiError("image_not_found", f"{where}: {uri} does not exist", where) from None
        if code in {"AccessDenied", "403", "AllAccessDisabled"}:
            raise ApiError(
                "image_access_denied",
                f"{where}: {uri} cannot be read (it does not exist, or this function may not "
                "read it)",
                where,
            ) from None
        logger.warning("s3 image read failed", extra={"uri": uri, "code": code})
        raise ApiError(
            "s3_error", f"{where}: reading {uri} failed ({code or 'S3 error'})", where
        ) from None
    except BotoCoreError as exc:
        logger.warning("s3 image read failed", extra={"uri": uri, "error": str(exc)})
        raise ApiError(
            "s3_error", f"{where}: reading {uri} failed ({type(exc).__name__})", where
        ) from None
    if len(raw) > limit:
        raise ApiError(
            "image_too_large", f"{where} ({uri}) is over {limit} bytes (MAX_IMAGE_BYTES)", where
        )
    return raw


def _image_sources(items: list[str], settings: Settings) -> list[bytes | tuple[str, str]]:
    """Every item checked before any work: base64 decoded to bytes, s3:// URIs to (bucket, key)."""
    sources: list[bytes | tuple[str, str]] = []
    for index, item in enumerate(items):
        where = f"images[{index}]"
        scheme = item.split("://", 1)[0].lower() if "://" in item[:16] else None
        if scheme == "s3":
            sources.append(_s3_location(item, where, settings))
        elif scheme is not None:
            raise ApiError(
                "invalid_image",
                f"{where}: {scheme}:// URIs are not read; send base64 bytes or an s3:// URI",
                where,
            )
        else:
            sources.append(_image_bytes_from_base64(item, where, settings))
    return sources


def _decoded_images(sources: list[bytes | tuple[str, str]], settings: Settings) -> Any:
    """PIL images one at a time (S3 objects fetched as the model reaches them)."""
    for index, source in enumerate(sources):
        where = f"images[{index}]"
        raw = source if isinstance(source, bytes) else _image_from_s3(*source, where, settings)
        try:
            yield decode_image(raw, where, settings.max_image_pixels)
        except ImageTooLargeError as exc:
            raise ApiError("image_too_large", str(exc), where) from None
        except ImageDecodeError as exc:
            raise ApiError("invalid_image", str(exc), where) from None


@router.post(
    "/embed_image",
    operation_id="embedImage",
    summary="Image embeddings (base64 or s3:// images), one normalised vector each",
    responses=responses(
        "list[list[float]]",
        "too_many_texts",
        "invalid_image",
        "image_not_found",
        "image_too_large",
        "bucket_not_allowed",
        "image_access_denied",
        "model_not_found",
        "model_not_configured",
        "s3_error",
        "model_not_baked",
    ),
)
def embed_image(request: EmbedImageRequest):
    settings = Settings.from_env()
    items = as_list(request.images)
    check_count(items, "images", settings, "images")
    name = resolve_name(request.model, "image", settings) if request.model else None
    model = model_for("image", settings, name)
    sources = _image_sources(items, settings)
    # kettle's ImageInputError carries the index of the image it cannot preprocess.
    with timed("InferenceLatency"), named("images", model):
        rows = list(model.embed(_decoded_images(sources, settings)))
    vectors = np.stack(rows).astype(np.float32, copy=False)
    if not model.manifest.normalize:  # the API promises unit vectors whatever the bake says
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    count(Images=len(items))
    logger.info("embed_image", extra={"images": len(items)})
    return json_response(json_floats(vectors))
