"""S3 ingestion with moto: real-shaped S3 and SQS-wrapped events (URL-encoded keys with spaces and
unicode), the outputs checked against kettle, redelivery idempotent, failures in the DLQ."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest
from _handler_helpers import (
    DENSE,
    EVENTS,
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    SPARSE,
    dlq_messages,
    lambda_context,
)

DOC = (
    "Kettles boil water quickly. An electric kettle switches itself off when the water boils. "
    "Limescale builds up in hard-water areas, so descale the kettle every few weeks. "
) * 4


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setenv("CHUNK_TOKENS", "32")
    monkeypatch.setenv("CHUNK_OVERLAP", "8")


def s3_record(key: str, etag: str, size: int, version: str | None = None) -> dict[str, Any]:
    """An S3 ObjectCreated record as S3 sends it: the key URL-encoded (spaces as '+')."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if version:
        obj["versionId"] = version
    obj["sequencer"] = "0055AED6DCD90281E5"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-25T03:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "kettle-ingest",
            "bucket": {"name": INPUT_BUCKET, "arn": f"arn:aws:s3:::{INPUT_BUCKET}"},
            "object": obj,
        },
    }


def put(aws, key: str, body: bytes | str) -> dict[str, Any]:
    """Put an object; the S3 record announcing it."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    response = aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=data)
    return s3_record(key, response["ETag"].strip('"'), len(data), response.get("VersionId"))


def sqs_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:kettle-ingest",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def run(event: dict[str, Any]) -> Any:
    from handler.app import s3_handler

    return s3_handler(event, lambda_context())


def read(aws, key: str) -> bytes:
    return aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()


def outputs(aws, source_key: str) -> tuple[np.ndarray, list[dict], dict]:
    """The files sink's outputs of a source, read as a reader must: the manifest first, then the
    files it names."""
    manifest = json.loads(read(aws, f"embeddings/{source_key}.manifest.json"))
    files = manifest["files"]
    vectors = np.load(io.BytesIO(read(aws, files["vectors"])), allow_pickle=False)
    rows = [json.loads(x) for x in read(aws, files["chunks"]).decode().splitlines()]
    return vectors, rows, manifest


def output_versions(aws) -> int:
    listed = aws["s3"].list_object_versions(Bucket=OUTPUT_BUCKET)
    return len(listed.get("Versions", []))


def test_direct_s3_event_with_an_encoded_unicode_key(aws, dense_model):
    key = "incoming/café notes été.txt"
    record = put(aws, key, DOC)
    assert "+" in record["s3"]["object"]["key"] and "%C3%A9" in record["s3"]["object"]["key"]
    result = run({"Records": [record]})
    assert [r["status"] for r in result["results"]] == ["embedded"]

    vectors, rows, manifest = outputs(aws, key)
    assert vectors.dtype == np.float32 and vectors.shape == (len(rows), 384) and len(rows) > 3
    texts = [DOC[r["start"] : r["end"]] for r in rows]
    np.testing.assert_allclose(vectors, np.stack(list(dense_model.passage_embed(texts))), atol=1e-6)
    for i, row in enumerate(rows):
        assert row["id"] == f"{key}#{i}" and row["doc_id"] == key and row["source_key"] == key
        assert row["sha256"] == hashlib.sha256(texts[i].encode()).hexdigest()
        assert row["tokens"] <= 32
    assert rows[0]["start"] == 0 and rows[-1]["end"] == len(DOC.rstrip())
    assert manifest["model"] == {
        "name": DENSE,
        "kind": "dense",
        "fingerprint": dense_model.manifest.fingerprint,
        "dim": 384,
    }
    assert manifest["count"] == len(rows) and manifest["shape"] == [len(rows), 384]
    assert manifest["source"]["bucket"] == INPUT_BUCKET and manifest["source"]["key"] == key
    assert manifest["source"]["etag"] == record["s3"]["object"]["eTag"]
    assert manifest["chunking"] == {"chunk_tokens": 32, "overlap": 8}


def test_redelivery_writes_nothing_new(aws):
    aws["s3"].put_bucket_versioning(
        Bucket=OUTPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    record = put(aws, "incoming/notes.md", DOC)
    run({"Records": [record]})
    written = output_versions(aws)
    # .npy, .jsonl, .manifest.json and the sync ledger's entry twice: "pending" (before the
    # writes, naming the files they will put) and "synced"
    assert written == 5
    again = run({"Records": [record]})
    assert [r["status"] for r in again["results"]] == ["skipped"]
    assert run(sqs_event({"Records": [record]})) == {"batchItemFailures": []}
    assert output_versions(aws) == written
    # A new version of the object is embedded again.
    changed = put(aws, "incoming/notes.md", DOC + " One more sentence.")
    assert [r["status"] for r in run({"Records": [changed]})["results"]] == ["embedded"]
    assert output_versions(aws) == written + 5  # new files, manifest and the ledger twice
    listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET)["Contents"]
    assert len(listed) == 4  # only the new version's files (and the ledger) remain


def test_sqs_wrapped_jsonl_and_json(aws, dense_model):
    lines = [
        {"id": "faq-1", "text": "How long does the kettle take? About three minutes."},
        {"id": 2, "text": "Can milk go in the kettle? No, only water."},
    ]
    jsonl_key = "incoming/docs/faq — v2.jsonl"
    json_key = "incoming/docs/liste à puces.json"
    first = put(aws, jsonl_key, "\n".join(json.dumps(x) for x in lines) + "\n\n")
    second = put(aws, json_key, json.dumps(["première phrase.", {"id": "b", "text": "second"}]))
    response = run(sqs_event({"Records": [first]}, {"Records": [second]}))
    assert response == {"batchItemFailures": []}

    vectors, rows, _ = outputs(aws, jsonl_key)
    assert [r["doc_id"] for r in rows] == ["faq-1", "2"]
    assert [r["id"] for r in rows] == ["faq-1#0", "2#0"]
    want = np.stack(list(dense_model.passage_embed([x["text"] for x in lines])))
    np.testing.assert_allclose(vectors, want, atol=1e-6)
    _, rows, manifest = outputs(aws, json_key)
    assert [r["doc_id"] for r in rows] == ["0", "b"] and manifest["documents"] == 2


BAD_OBJECTS = [
    # (id, key, body, DLQ error code, words in the reason)
    ("unsupported", "incoming/report.pdf", b"%PDF-1.7", "unsupported_type", ".pdf"),
    ("undecodable", "incoming/latin1 ü.txt", "caf\xe9".encode("latin-1"), "undecodable", "UTF-8"),
    (
        "bad-json-line",
        "incoming/bad.jsonl",
        b'{"id": 1, "text": "fine"}\n{"id": 2, "text": \n',
        "bad_document",
        "line 2",
    ),
    ("no-text", "incoming/notext.jsonl", b'{"id": 1, "body": "x"}\n', "bad_document", "line 1"),
    ("json-not-array", "incoming/x.json", b'"just a string"', "bad_document", "array"),
    ("too-large", "incoming/big.txt", b"word " * 100, "too_large", "MAX_OBJECT_BYTES"),
    # A lone surrogate escape is valid JSON but no text a tokenizer or UTF-8 can hold.
    ("surrogate-json", "incoming/s.json", b'["fine", "bad \\ud800"]', "bad_document", "item 1"),
    (
        "surrogate-jsonl",
        "incoming/s.jsonl",
        b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "\\ud800"}\n',
        "bad_document",
        "line 2",
    ),
    (
        "surrogate-id",
        "incoming/i.jsonl",
        b'{"id": "\\udc00", "text": "ok"}\n',
        "bad_document",
        "line 1",
    ),
]


@pytest.mark.parametrize(
    ("key", "body", "code", "words"), [pytest.param(*c[1:], id=c[0]) for c in BAD_OBJECTS]
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["direct", "sqs"])
def test_bad_objects_end_in_the_dlq_with_the_reason(
    aws, monkeypatch, key, body, code, words, wrapped
):
    monkeypatch.setenv("MAX_OBJECT_BYTES", "400")
    record = put(aws, key, body)
    if code == "too_large":  # the event's size is checked first; the real size too
        record["s3"]["object"]["size"] = 10
    event = sqs_event({"Records": [record]}) if wrapped else {"Records": [record]}
    response = run(event)
    if wrapped:
        assert response == {"batchItemFailures": []}  # permanent: recorded, not retried
    else:
        assert [r["status"] for r in response["results"]] == ["failed"]
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == code and words in message["reason"], message
    assert message["bucket"] == INPUT_BUCKET and message["key"] == key
    assert message["etag"] == record["s3"]["object"]["eTag"]
    assert "version_id" in message and message["source"] == ("sqs" if wrapped else "s3")
    assert not [
        o["Key"]
        for o in aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
        if "/_sync/" not in o["Key"]
    ]


def test_a_model_error_ends_in_the_dlq(aws, monkeypatch):
    from kettle.dense import TextEmbedding

    def broken(self, texts, batch_size=256):
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr(TextEmbedding, "passage_embed", broken)
    record = put(aws, "incoming/ok.txt", DOC)
    assert run(sqs_event({"Records": [record]})) == {"batchItemFailures": []}
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "model_error" and "bad allocation" in message["reason"]


class _FlakyS3:
    """The handler's S3 client, throttled on one key."""

    def __init__(self, real, key: str) -> None:
        self.real, self.key = real, key

    def get_object(self, **kwargs):
        from botocore.exceptions import ClientError

        if kwargs["Key"] == self.key:
            error = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}
            error["ResponseMetadata"] = {"HTTPStatusCode": 503}
            raise ClientError(error, "GetObject")
        return self.real.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_transient_errors_are_retried_not_dead_lettered(aws, monkeypatch):
    from handler import clients, ingest
    from handler.ingest import objects

    good = put(aws, "incoming/good.txt", DOC)
    slow = put(aws, "incoming/slow.txt", DOC)
    real = clients.client("s3")
    monkeypatch.setattr(
        objects,
        "client",
        lambda s: _FlakyS3(real, "incoming/slow.txt") if s == "s3" else clients.client(s),
    )
    response = run(sqs_event({"Records": [good]}, {"Records": [slow]}))
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    assert read(aws, "embeddings/incoming/good.txt.manifest.json")
    with pytest.raises(ingest.TransientError, match="SlowDown"):
        run({"Records": [slow]})  # direct: raise, so Lambda's async retries take over


def test_without_a_dlq_a_permanent_failure_is_retried(aws, monkeypatch):
    monkeypatch.setenv("DLQ_URL", "")
    record = put(aws, "incoming/report.pdf", b"%PDF")
    response = run(sqs_event({"Records": [record]}))
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}


def test_test_events_foreign_prefixes_and_own_outputs_are_ignored(aws, monkeypatch):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": INPUT_BUCKET}
    assert run(sqs_event(test_event)) == {"batchItemFailures": []}
    elsewhere = put(aws, "other/file.txt", DOC)
    assert [r["status"] for r in run({"Records": [elsewhere]})["results"]] == ["ignored"]
    monkeypatch.setenv("OUTPUT_BUCKET", INPUT_BUCKET)
    monkeypatch.setenv("INPUT_PREFIX", "")
    own = put(aws, "embeddings/incoming/a.txt.jsonl", "{}")
    assert [r["status"] for r in run({"Records": [own]})["results"]] == ["ignored"]
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []


def test_a_message_that_is_not_an_s3_event_goes_to_the_dlq(aws):
    assert run(sqs_event("this is not json")) == {"batchItemFailures": []}
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "bad_event" and message["body"] == "this is not json"
    assert message["message_id"] == "msg-0"


def test_versioned_input_bucket(aws):
    aws["s3"].put_bucket_versioning(
        Bucket=INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    first = put(aws, "incoming/v.txt", DOC)
    put(aws, "incoming/v.txt", "A newer text.")  # the event for the first version arrives late
    run({"Records": [first]})
    _, rows, manifest = outputs(aws, "incoming/v.txt")
    assert manifest["source"]["version_id"] == first["s3"]["object"]["versionId"]
    assert rows[-1]["end"] == len(DOC.rstrip())  # the version the event named, not the latest


def test_sparse_vectors_are_written_when_configured(aws, monkeypatch, sparse_baked, models_dir):
    from kettle.sparse import SparseTextEmbedding

    monkeypatch.setenv("KETTLE_SPARSE_MODEL", SPARSE)
    record = put(aws, "incoming/sparse.txt", DOC)
    run({"Records": [record]})
    _, rows, manifest = outputs(aws, "incoming/sparse.txt")
    sparse_rows = [json.loads(x) for x in read(aws, manifest["files"]["sparse"]).splitlines()]
    assert [s["id"] for s in sparse_rows] == [r["id"] for r in rows]
    want = list(
        SparseTextEmbedding(SPARSE, models_dir=models_dir).embed(
            [DOC[r["start"] : r["end"]] for r in rows]
        )
    )
    for got, w in zip(sparse_rows, want, strict=True):
        assert got["indices"] == w.indices.tolist()
        np.testing.assert_allclose(got["values"], w.values, atol=1e-6)
    assert manifest["sparse_model"]["name"] == SPARSE
    assert manifest["files"]["sparse"].endswith(".sparse.jsonl")


@pytest.mark.parametrize(
    "name",
    ["s3_put.json", "sqs_s3_put.json", "sqs_sns_s3_put.json", "sqs_eventbridge_s3_put.json"],
)
def test_sample_events(aws, monkeypatch, name):
    """events/ samples run as they are, against objects at the keys they name."""
    from urllib.parse import unquote_plus

    from handler.app import dispatch_handler

    event = json.loads((EVENTS / name).read_text())
    from handler.ingest import object_events

    bodies = (
        [json.loads(r["body"]) for r in event["Records"]] if name.startswith("sqs") else [event]
    )
    s3_events = [
        {
            "Records": [
                {
                    "s3": {
                        "bucket": {"name": e.ref.bucket},
                        "object": {"key": quote_plus(e.ref.key, safe="/")},
                    }
                }
            ]
        }
        for body in bodies
        for e in object_events(body)
    ]
    bucket = s3_events[0]["Records"][0]["s3"]["bucket"]["name"]
    aws["s3"].create_bucket(Bucket=bucket)
    keys = [unquote_plus(r["s3"]["object"]["key"]) for e in s3_events for r in e["Records"]]
    for key in keys:
        body = DOC if key.endswith(".txt") else json.dumps({"id": "a", "text": DOC}) + "\n"
        aws["s3"].put_object(Bucket=bucket, Key=key, Body=body.encode())
    result = dispatch_handler(event, lambda_context())
    if name.startswith("sqs"):
        assert result == {"batchItemFailures": []}
    else:
        assert [r["status"] for r in result["results"]] == ["embedded"]
    for key in keys:
        assert read(aws, f"embeddings/{key}.manifest.json")
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    if name == "s3_put.json":  # and the sample delete removes what the put wrote
        delete = json.loads((EVENTS / "s3_delete.json").read_text())
        assert [r["status"] for r in dispatch_handler(delete, lambda_context())["results"]] == [
            "deleted"
        ]
        listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="embeddings/incoming/")
        assert listed["KeyCount"] == 0
