"""Images through the handler: POST /embed_image (base64 and s3:// via moto, every error naming
images[i]) and S3 ingestion of image objects (outputs, Content-Type detection, dead letters,
idempotent redelivery). Vectors are compared with kettle's ImageEmbedding on the same bytes."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
import pytest
from _handler_helpers import (
    IMAGE_MODEL,
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    dlq_messages,
    lambda_context,
    output_file,
)

VERSIONS = [pytest.param(2, id="http-api-v2"), pytest.param(1, id="rest-api-v1")]


@pytest.fixture(scope="module")
def pictures(image_helpers) -> dict[str, bytes]:
    """Encoded test images: several formats, modes and shapes."""
    images = image_helpers.make_test_images()

    def encoded(name: str, fmt: str) -> bytes:
        buffer = io.BytesIO()
        image = images[name]
        if fmt == "JPEG" and image.mode not in {"RGB", "L"}:
            image = image.convert("RGB")
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    return {
        "landscape.png": encoded("landscape_rgb", "PNG"),
        "portrait.jpg": encoded("portrait_rgb", "JPEG"),
        "rgba.webp": encoded("rgba", "WEBP"),
        "palette.gif": encoded("palette_p", "GIF"),
        "gray.bmp": encoded("gray_l", "BMP"),
        "tiny.png": encoded("tiny_rgb", "PNG"),
    }


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def vectors_of(result) -> np.ndarray:
    assert result.status == 200, result
    return np.asarray(result.json(), dtype=np.float32)


def error_of(result, status: int, param: str | None) -> dict:
    assert result.status == status, result
    error = result.error
    assert error["param"] == param, error
    assert "Traceback" not in result.text
    return error


# ---- POST /embed_image --------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_embed_image_base64_equals_kettle(
    call_api, with_image_model, kettle_image, pictures, version
):
    raws = list(pictures.values())
    result = call_api("POST", "/embed_image", {"images": [b64(r) for r in raws]}, version=version)
    got = vectors_of(result)
    want = np.stack(list(kettle_image.embed(raws)))
    assert got.shape == (len(raws), kettle_image.embedding_size)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Distinct images, distinct vectors (the comparison above is not between constants).
    assert np.abs(got[0] - got[1]).max() > 1e-3


def test_embed_image_forms_of_base64(call_api, with_image_model, kettle_image, pictures):
    raw = pictures["landscape.png"]
    want = np.stack(list(kettle_image.embed([raw])))
    encoded = b64(raw)
    forms = {
        "single string": encoded,
        "data URL": "data:image/png;base64," + encoded,
        "URL-safe, unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "line breaks": "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
    }
    for name, form in forms.items():
        got = vectors_of(call_api("POST", "/embed_image", {"images": form}))
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
    named = call_api("POST", "/embed_image", {"images": [encoded], "model": IMAGE_MODEL})
    np.testing.assert_allclose(vectors_of(named), want, atol=1e-6)


def test_embed_image_from_s3(call_api, with_image_model, kettle_image, pictures, aws, monkeypatch):
    monkeypatch.setenv("IMAGE_BUCKETS", f"other-bucket, {INPUT_BUCKET}")
    keys = ["photos/a landscape é.png", "photos/portrait.jpg"]
    for key, name in zip(keys, ["landscape.png", "portrait.jpg"], strict=True):
        aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=pictures[name])
    images = [
        f"s3://{INPUT_BUCKET}/{keys[0]}",
        b64(pictures["gray.bmp"]),
        f"s3://{INPUT_BUCKET}/{keys[1]}",
    ]
    got = vectors_of(call_api("POST", "/embed_image", {"images": images}))
    want = np.stack(
        list(
            kettle_image.embed(
                [pictures["landscape.png"], pictures["gray.bmp"], pictures["portrait.jpg"]]
            )
        )
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_s3_images_outside_the_allowed_buckets_are_403(
    call_api, with_image_model, pictures, aws, monkeypatch
):
    aws["s3"].put_object(Bucket=OUTPUT_BUCKET, Key="x.png", Body=pictures["tiny.png"])
    ok = b64(pictures["tiny.png"])
    # No IMAGE_BUCKETS: no s3:// image at all.
    none = call_api("POST", "/embed_image", {"images": [ok, f"s3://{INPUT_BUCKET}/a.png"]})
    error = error_of(none, 403, "images[1]")
    assert "IMAGE_BUCKETS" in error["message"] and error["code"] == "bucket_not_allowed"
    monkeypatch.setenv("IMAGE_BUCKETS", INPUT_BUCKET)
    other = call_api("POST", "/embed_image", {"images": [ok, ok, f"s3://{OUTPUT_BUCKET}/x.png"]})
    error = error_of(other, 403, "images[2]")
    assert OUTPUT_BUCKET in error["message"] and INPUT_BUCKET in error["message"]


def test_s3_image_errors_name_the_item(call_api, with_image_model, pictures, aws, monkeypatch):
    monkeypatch.setenv("IMAGE_BUCKETS", INPUT_BUCKET)
    monkeypatch.setenv("MAX_IMAGE_BYTES", "2000")
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="big.png", Body=b"\x89PNG" + b"\0" * 3000)
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="notes.png", Body=b"just some text")
    ok = b64(pictures["tiny.png"])
    cases = [
        (f"s3://{INPUT_BUCKET}/missing.png", 422, "image_not_found", "does not exist"),
        (f"s3://{INPUT_BUCKET}/big.png", 413, "image_too_large", "MAX_IMAGE_BYTES"),
        (f"s3://{INPUT_BUCKET}/notes.png", 422, "invalid_image", "not an image"),
        (f"s3://{INPUT_BUCKET}", 422, "invalid_image", "s3://bucket/key"),
        (f"s3://{INPUT_BUCKET}/", 422, "invalid_image", "s3://bucket/key"),
    ]
    for uri, status, code, words in cases:
        result = call_api("POST", "/embed_image", {"images": [ok, uri]})
        error = error_of(result, status, "images[1]")
        assert error["code"] == code and words in error["message"], (uri, error)


BAD_IMAGES = [
    # (id, item, status, code, words)
    ("not-base64", "not base64 at all!", 422, "invalid_image", "base64"),
    (
        "text-not-image",
        base64.b64encode(b"hello, I am text").decode(),
        422,
        "invalid_image",
        "not an image",
    ),
    ("empty-bytes", "====", 422, "invalid_image", None),
    ("http-url", "https://example.com/cat.png", 422, "invalid_image", "https://"),
    ("file-url", "file:///etc/passwd", 422, "invalid_image", "file://"),
    ("data-url-not-base64", "data:image/png,rawbytes", 422, "invalid_image", "data: URL"),
]


@pytest.mark.parametrize(
    ("item", "status", "code", "words"), [pytest.param(*c[1:], id=c[0]) for c in BAD_IMAGES]
)
def test_bad_images_name_the_item(call_api, with_image_model, pictures, item, status, code, words):
    ok = b64(pictures["tiny.png"])
    result = call_api("POST", "/embed_image", {"images": [ok, ok, item]})
    error = error_of(result, status, "images[2]")
    assert error["code"] == code, error
    assert words is None or words in error["message"], error


def test_a_truncated_png_names_the_item(call_api, with_image_model, pictures):
    raw = pictures["landscape.png"]
    result = call_api("POST", "/embed_image", {"images": [b64(raw), b64(raw[: len(raw) // 2])]})
    error = error_of(result, 422, "images[1]")
    assert "not an image Pillow can read" in error["message"]


def test_wrong_types_are_422(call_api, with_image_model):
    cases = [
        ({"images": [1]}, "images[0]"),
        ({"images": []}, "images"),
        ({"images": ["", "x"]}, "images[0]"),
        ({}, "images"),
        ({"images": ["x"], "model": ""}, "model"),
        ({"images": ["x"], "size": 3}, "size"),
    ]
    for body, param in cases:
        error_of(call_api("POST", "/embed_image", body), 422, param)


def test_image_limits(call_api, with_image_model, pictures, monkeypatch):
    raw = pictures["landscape.png"]
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(len(raw) - 1))
    error = error_of(call_api("POST", "/embed_image", {"images": [b64(raw)]}), 413, "images[0]")
    assert "MAX_IMAGE_BYTES" in error["message"]
    # Far past the cap: refused before decoding.
    huge = b64(raw * 8)
    error = error_of(
        call_api("POST", "/embed_image", {"images": ["x" * 8, huge]}), 413, "images[1]"
    )
    monkeypatch.delenv("MAX_IMAGE_BYTES")
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "100")  # landscape is 53x37
    error = error_of(call_api("POST", "/embed_image", {"images": [b64(raw)]}), 413, "images[0]")
    assert "53x37" in error["message"] and "MAX_IMAGE_PIXELS" in error["message"]
    monkeypatch.delenv("MAX_IMAGE_PIXELS")
    monkeypatch.setenv("MAX_TEXTS", "2")
    error = error_of(call_api("POST", "/embed_image", {"images": [b64(raw)] * 3}), 413, "images")
    assert "3 images" in error["message"] and "MAX_TEXTS" in error["message"]
    monkeypatch.delenv("MAX_TEXTS")
    monkeypatch.setenv("MAX_REQUEST_BYTES", "1000")
    error = error_of(call_api("POST", "/embed_image", {"images": [b64(raw)] * 2}), 413, "body")
    assert "MAX_REQUEST_BYTES" in error["message"]


def test_embed_image_without_a_configured_model_is_501(call_api, pictures):
    result = call_api("POST", "/embed_image", {"images": [b64(pictures["tiny.png"])]})
    error = error_of(result, 501, None)
    assert "KETTLE_IMAGE_MODEL" in error["message"]


def test_embed_image_unknown_model_lists_the_image_models(call_api, with_image_model, pictures):
    result = call_api(
        "POST", "/embed_image", {"images": [b64(pictures["tiny.png"])], "model": "all-MiniLM-L6-v2"}
    )
    error = error_of(result, 404, "model")
    assert IMAGE_MODEL in error["message"]


def test_models_lists_the_image_model(call_api, with_image_model):
    body = call_api("GET", "/models").json()
    listed = {m["id"]: m for m in body["data"]}
    assert listed[IMAGE_MODEL]["kind"] == "image" and listed[IMAGE_MODEL]["serves"]
    assert body["configured"]["image"] == IMAGE_MODEL
    assert body["configured"]["late_interaction"] is None


def test_openapi_lists_the_new_routes(call_api):
    paths = call_api("GET", "/openapi.json").json()["paths"]
    assert "post" in paths["/embed_image"] and "post" in paths["/embed_multi"]
    assert paths["/embed_image"]["post"]["operationId"] == "embedImage"
    assert paths["/embed_multi"]["post"]["operationId"] == "embedMulti"


# ---- S3 ingestion of images ---------------------------------------------------------------------
def s3_record(key: str, etag: str, size: int) -> dict:
    from urllib.parse import quote_plus

    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": INPUT_BUCKET, "arn": f"arn:aws:s3:::{INPUT_BUCKET}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
        },
    }


def put(aws, key: str, body: bytes, **extra) -> dict:
    response = aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=body, **extra)
    return s3_record(key, response["ETag"].strip('"'), len(body))


def sqs_event(*bodies: dict) -> dict:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:kettle-ingest",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def run(event: dict):
    from handler.app import s3_handler

    return s3_handler(event, lambda_context())


def read(aws, key: str) -> bytes:
    return aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()


def out(aws, base: str, what: str) -> bytes:
    return output_file(aws["s3"], OUTPUT_BUCKET, base, what)


def output_keys(aws) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def outputs_beside_the_ledger(aws) -> list[str]:
    """The output keys but the sync ledger's (a failed object's entry keeps its sequencer)."""
    return [k for k in output_keys(aws) if "/_sync/" not in k]


def output_versions(aws) -> int:
    return len(aws["s3"].list_object_versions(Bucket=OUTPUT_BUCKET).get("Versions", []))


@pytest.mark.parametrize("wrapped", [False, True], ids=["direct", "sqs"])
def test_an_image_object_is_embedded(aws, with_image_model, kettle_image, pictures, wrapped):
    key = "incoming/photos/été landscape.png"
    raw = pictures["landscape.png"]
    record = put(aws, key, raw)
    response = run(sqs_event({"Records": [record]}) if wrapped else {"Records": [record]})
    if wrapped:
        assert response == {"batchItemFailures": []}
    else:
        assert [r["status"] for r in response["results"]] == ["embedded"]
    base = f"embeddings/{key}"
    manifest = json.loads(read(aws, f"{base}.manifest.json"))
    files = [manifest["files"]["vectors"], manifest["files"]["chunks"]]
    from handler.ingest.ledger import Ledger

    ledger = Ledger(None, OUTPUT_BUCKET, "embeddings/").object_key(key)
    assert output_keys(aws) == sorted([*files, f"{base}.manifest.json", ledger])
    vectors = np.load(io.BytesIO(out(aws, base, "vectors")), allow_pickle=False)
    assert vectors.dtype == np.float32 and vectors.shape == (1, kettle_image.embedding_size)
    np.testing.assert_allclose(vectors, np.stack(list(kettle_image.embed([raw]))), atol=1e-6)
    [row] = [json.loads(x) for x in out(aws, base, "chunks").decode().splitlines()]
    assert row == {
        "id": key,
        "source_key": key,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "width": 53,
        "height": 37,
        "format": "PNG",
    }
    manifest = json.loads(read(aws, f"{base}.manifest.json"))
    assert manifest["model"]["name"] == IMAGE_MODEL and manifest["model"]["kind"] == "image"
    assert manifest["model"]["fingerprint"] == kettle_image.manifest.fingerprint
    assert manifest["shape"] == [1, kettle_image.embedding_size] and manifest["count"] == 1
    assert (
        manifest["source"]["key"] == key
        and manifest["source"]["etag"] == record["s3"]["object"]["eTag"]
    )
    assert not dlq_messages(aws["sqs"], aws["dlq"])


def test_an_image_by_content_type_without_an_extension(
    aws, with_image_model, kettle_image, pictures
):
    raw = pictures["portrait.jpg"]
    record = put(aws, "incoming/camera/IMG_0001", raw, ContentType="image/jpeg")
    assert [r["status"] for r in run({"Records": [record]})["results"]] == ["embedded"]
    vectors = np.load(io.BytesIO(out(aws, "embeddings/incoming/camera/IMG_0001", "vectors")))
    np.testing.assert_allclose(vectors, np.stack(list(kettle_image.embed([raw]))), atol=1e-6)
    # Neither a known extension nor an image Content-Type: unsupported, with both in the reason.
    other = put(aws, "incoming/camera/IMG_0002", b"%PDF-1.7", ContentType="application/pdf")
    assert [r["status"] for r in run({"Records": [other]})["results"]] == ["failed"]
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "unsupported_type" and "application/pdf" in message["reason"]


def test_image_redelivery_writes_nothing_new(aws, with_image_model, pictures):
    aws["s3"].put_bucket_versioning(
        Bucket=OUTPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    record = put(aws, "incoming/p.webp", pictures["rgba.webp"])
    assert [r["status"] for r in run({"Records": [record]})["results"]] == ["embedded"]
    written = output_versions(aws)
    assert written == 5  # .npy, .jsonl, manifest, the ledger's entry: pending, then synced
    assert [r["status"] for r in run({"Records": [record]})["results"]] == ["skipped"]
    assert run(sqs_event({"Records": [record]})) == {"batchItemFailures": []}
    assert output_versions(aws) == written
    changed = put(aws, "incoming/p.webp", pictures["palette.gif"])
    assert [r["status"] for r in run({"Records": [changed]})["results"]] == ["embedded"]
    assert output_versions(aws) == written + 5


BAD_IMAGE_OBJECTS = [
    # (id, key, body, DLQ error code, words in the reason)
    (
        "corrupt-png",
        "incoming/broken.png",
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,
        "undecodable",
        "not an image",
    ),
    ("text-as-jpg", "incoming/notes.jpg", b"this is not a picture", "undecodable", "not an image"),
    ("empty-gif", "incoming/empty.gif", b"", "undecodable", "empty"),
]


@pytest.mark.parametrize(
    ("key", "body", "code", "words"), [pytest.param(*c[1:], id=c[0]) for c in BAD_IMAGE_OBJECTS]
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["direct", "sqs"])
def test_bad_image_objects_end_in_the_dlq(aws, with_image_model, key, body, code, words, wrapped):
    record = put(aws, key, body)
    response = run(sqs_event({"Records": [record]}) if wrapped else {"Records": [record]})
    if wrapped:
        assert response == {"batchItemFailures": []}
    else:
        assert [r["status"] for r in response["results"]] == ["failed"]
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == code and words in message["reason"], message
    assert message["key"] == key and message["bucket"] == INPUT_BUCKET
    assert outputs_beside_the_ledger(aws) == []


def test_an_image_past_the_byte_or_pixel_cap_ends_in_the_dlq(
    aws, with_image_model, pictures, monkeypatch
):
    raw = pictures["landscape.png"]
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(len(raw) - 1))
    record = put(aws, "incoming/big.png", raw)
    record["s3"]["object"]["size"] = 10  # the real size is checked too, not only the event's
    run({"Records": [record]})
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "too_large" and "MAX_IMAGE_BYTES" in message["reason"]
    monkeypatch.delenv("MAX_IMAGE_BYTES")
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "100")
    run({"Records": [put(aws, "incoming/wide.png", raw)]})
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "too_large" and "MAX_IMAGE_PIXELS" in message["reason"]
    assert outputs_beside_the_ledger(aws) == []


def test_an_image_without_an_image_model_ends_in_the_dlq(aws, pictures):
    record = put(aws, "incoming/cat.png", pictures["tiny.png"])
    assert run(sqs_event({"Records": [record]})) == {"batchItemFailures": []}
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["reason"] == "no image model configured (KETTLE_IMAGE_MODEL)"
    assert message["error"] == "model_not_configured" and message["key"] == "incoming/cat.png"
    assert outputs_beside_the_ledger(aws) == []


def test_a_batch_embeds_image_objects_too(aws, with_image_model, kettle_image, pictures):
    from handler.app import batch_handler

    raw = pictures["gray.bmp"]
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/g.bmp", Body=raw)
    event = {
        "Items": [{"Key": "corpus/g.bmp", "Size": len(raw)}],
        "BatchInput": {
            "bucket": INPUT_BUCKET,
            "output_bucket": OUTPUT_BUCKET,
            "output_prefix": "v/",
        },
    }
    summary = batch_handler(event, lambda_context())
    assert summary["processed"] == 1 and summary["failed"] == [], summary
    vectors = np.load(io.BytesIO(out(aws, "v/corpus/g.bmp", "vectors")))
    np.testing.assert_allclose(vectors, np.stack(list(kettle_image.embed([raw]))), atol=1e-6)
