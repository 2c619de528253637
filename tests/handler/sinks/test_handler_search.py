"""The vector sinks end to end: documents in the bucket -> SQS -> s3_handler -> sink -> POST /search.

S3, SQS and S3 Vectors are moto's; moto has no QueryVectors, so tests/handler/_moto_s3vectors.py
adds an exact-cosine one to moto itself (botocore's real request and response shapes). Qdrant is
qdrant-client's embedded local mode in a temporary folder.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest
from _handler_helpers import INPUT_BUCKET, OUTPUT_BUCKET, dlq_messages, lambda_context

VECTOR_BUCKET = "kettle-vectors-test"
VECTOR_INDEX = "chunks"
KETTLE_DOC = (
    "Descale the kettle every few weeks: limescale builds up in hard-water areas. Fill it with "
    "equal parts water and white vinegar, boil, leave it for an hour and rinse it well. "
)
DOCS = {
    "incoming/kitchen/kettle.txt": KETTLE_DOC,
    "incoming/garage/bicycle.md": (
        "Oil the bicycle chain after riding in the rain. Wipe off the old grease first, then "
        "put one drop of oil on each link and turn the pedals backwards."
    ),
    "incoming/garden/roses.txt": (
        "Prune roses in late winter, just above an outward-facing bud, and feed them in spring."
    ),
}
LONG = " ".join(f"Sentence number {i} talks about kettles and tea and water." for i in range(60))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setenv("CHUNK_TOKENS", "32")
    monkeypatch.setenv("CHUNK_OVERLAP", "4")


@pytest.fixture
def s3vectors(aws, monkeypatch) -> Any:
    """A vector bucket + cosine index in moto (with QueryVectors), chosen by VECTOR_SINK."""
    import _moto_s3vectors
    import boto3

    _moto_s3vectors.install()
    client = boto3.client("s3vectors")
    client.create_vector_bucket(vectorBucketName=VECTOR_BUCKET)
    client.create_index(
        vectorBucketName=VECTOR_BUCKET,
        indexName=VECTOR_INDEX,
        dataType="float32",
        dimension=384,
        distanceMetric="cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": ["text"]},
    )
    monkeypatch.setenv("VECTOR_SINK", "s3vectors")
    monkeypatch.setenv("VECTOR_BUCKET", VECTOR_BUCKET)
    monkeypatch.setenv("VECTOR_INDEX", VECTOR_INDEX)
    return client


@pytest.fixture
def qdrant(aws, monkeypatch, tmp_path) -> Any:
    """qdrant-client's local mode in a temporary folder, BM25 sparse vectors beside dense."""
    from handler.sinks import qdrant as sink

    monkeypatch.setenv("VECTOR_SINK", "qdrant")
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("SPARSE_VECTORS", "bm25")
    yield sink
    sink.close_clients()


def stored_keys(sink_name: str, client: Any, source_key: str | None = None) -> list[str]:
    """The chunk ids a sink holds (for one source key, or all)."""
    if sink_name == "s3vectors":
        listed = client.list_vectors(
            vectorBucketName=VECTOR_BUCKET, indexName=VECTOR_INDEX, returnMetadata=True
        )["vectors"]
        return sorted(v["key"] for v in listed if source_key in (None, v["metadata"]["source_key"]))
    from handler.settings import Settings

    sink = client.qdrant_client(path=Settings.from_env().qdrant_path)
    if not sink.collection_exists("kettle"):
        return []
    points, _ = sink.scroll("kettle", limit=10_000, with_payload=True)
    return sorted(
        p.payload["chunk_id"] for p in points if source_key in (None, p.payload["source_key"])
    )


@pytest.fixture(params=["s3vectors", "qdrant"])
def sink(request) -> tuple[str, Any]:
    """Each searchable sink in turn: (name, what stored_keys reads it with)."""
    return request.param, request.getfixturevalue(request.param)


# ---- events -------------------------------------------------------------------------------------
def s3_record(key: str, action: str, sequencer: int, etag: str = "", size: int = 0) -> dict:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": f"{sequencer:016X}"}
    if action.startswith("ObjectCreated"):
        obj.update(eTag=etag, size=size)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": action,
        "s3": {"bucket": {"name": INPUT_BUCKET}, "object": obj},
    }


SEQUENCE = [100]


def put(aws, key: str, text: str) -> dict:
    """Put an object; its ObjectCreated record (sequencers increase, as S3's do per key)."""
    SEQUENCE[0] += 1
    data = text.encode()
    response = aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=data)
    return s3_record(key, "ObjectCreated:Put", SEQUENCE[0], response["ETag"].strip('"'), len(data))


def remove(aws, key: str) -> dict:
    SEQUENCE[0] += 1
    aws["s3"].delete_object(Bucket=INPUT_BUCKET, Key=key)
    return s3_record(key, "ObjectRemoved:Delete", SEQUENCE[0])


def sqs(*bodies: Any) -> dict:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"h-{i}",
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


def ingest(event: dict) -> Any:
    from handler.app import s3_handler

    return s3_handler(event, lambda_context())


def ingest_all(aws) -> None:
    records = [put(aws, key, text) for key, text in DOCS.items()]
    assert ingest(sqs(*({"Records": [r]} for r in records))) == {"batchItemFailures": []}


def ledger_key(key: str) -> str:
    """Where the sync ledger keeps ``key``'s entry in the output bucket."""
    from handler.ingest.ledger import Ledger

    return Ledger(None, OUTPUT_BUCKET, "embeddings/").object_key(key)


def ledger(aws, key: str) -> dict:
    body = aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=ledger_key(key))["Body"]
    return json.loads(body.read())


# ---- end to end ---------------------------------------------------------------------------------
def test_documents_dropped_in_the_bucket_are_found_by_post_search(aws, sink, call_api, dense_model):
    name, client = sink
    ingest_all(aws)
    response = call_api("POST", "/search", {"query": "how do I remove limescale?", "top_k": 3})
    assert response.status == 200, response
    body = response.json()
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2" and body["mode"] == "dense"
    [best, *rest] = body["results"]
    assert best["source_key"] == "incoming/kitchen/kettle.txt"
    assert best["id"] == "incoming/kitchen/kettle.txt#0"
    assert best["text"] == KETTLE_DOC[best["start"] : best["end"]]
    assert set(best) == {"id", "score", "source_key", "start", "end", "text"}
    # The scores are the cosine similarities kettle itself gives (the object's chunks embedded
    # together, as ingestion does: int8 activations are quantized per batch).
    from kettle.chunking import TextChunker

    chunker = TextChunker.for_encoder(dense_model, 32, 4, prefix=dense_model.passage_prefix)
    texts = [c.text for c in chunker.chunks(KETTLE_DOC)]
    assert texts[0] == best["text"]
    query = next(dense_model.query_embed(["how do I remove limescale?"]))
    passages = np.stack(list(dense_model.passage_embed(texts)))
    assert best["score"] == pytest.approx(float(query @ passages[0]), abs=1e-4)
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    # filter.source_prefix keeps to the objects under it (a "/" boundary or any prefix).
    for prefix in ("incoming/garage/", "incoming/garage/bi", "incoming/gar"):
        found = call_api(
            "POST", "/search", {"query": "limescale", "filter": {"source_prefix": prefix}}
        ).json()["results"]
        assert found and all(r["source_key"].startswith(prefix) for r in found), (prefix, found)
    assert len(stored_keys(name, client)) == sum(ledger(aws, key)["count"] for key in DOCS)
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []


def test_a_new_version_replaces_every_old_vector(aws, sink):
    name, client = sink
    key = "incoming/kitchen/long.txt"
    assert ingest({"Records": [put(aws, key, LONG)]})["results"][0]["status"] == "embedded"
    assert len(stored_keys(name, client, key)) >= 12
    assert ingest({"Records": [put(aws, key, "Short now.")]})["results"][0]["count"] == 1
    assert stored_keys(name, client, key) == [f"{key}#0"]
    assert ledger(aws, key)["count"] == 1


def test_object_removed_deletes_its_vectors_and_a_stale_create_changes_nothing(aws, sink, call_api):
    name, client = sink
    ingest_all(aws)
    key = "incoming/kitchen/kettle.txt"
    created = put(aws, key, KETTLE_DOC)  # the same text again: skipped, nothing rewritten
    assert ingest({"Records": [created]})["results"][0]["status"] == "skipped"
    assert ingest(sqs({"Records": [remove(aws, key)]})) == {"batchItemFailures": []}
    assert stored_keys(name, client, key) == []
    assert ledger(aws, key)["state"] == "deleted"
    found = call_api("POST", "/search", {"query": "limescale", "top_k": 10}).json()["results"]
    assert key not in {r["source_key"] for r in found}
    # A late redelivery of the create (older sequencer) neither resurrects nor dead-letters it.
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=KETTLE_DOC.encode())
    assert ingest({"Records": [created]})["results"][0]["status"] == "stale"
    assert stored_keys(name, client, key) == []
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []


def test_a_stale_redelivery_of_v1_never_overwrites_v2(aws, sink, monkeypatch):
    name, client = sink
    aws["s3"].put_bucket_versioning(
        Bucket=INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "incoming/notes.txt"
    v1 = put(aws, key, LONG)
    v1["s3"]["object"]["versionId"] = aws["s3"].head_object(Bucket=INPUT_BUCKET, Key=key)[
        "VersionId"
    ]
    v2 = put(aws, key, "Version two is one chunk.")
    assert ingest({"Records": [v2]})["results"][0]["status"] == "embedded"
    assert [r["status"] for r in ingest({"Records": [v1]})["results"]] == ["stale"]
    assert stored_keys(name, client, key) == [f"{key}#0"]
    assert ledger(aws, key)["sequencer"] == v2["s3"]["object"]["sequencer"]


def test_files_sink_ordering_and_commit(aws):
    """The files sink follows the same ledger: a stale event writes nothing, and the manifest
    names only the files of the version it commits."""
    key = "incoming/f.txt"
    v1 = put(aws, key, LONG)
    v2 = put(aws, key, "Two.")
    ingest({"Records": [v2]})
    before = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET)["Contents"])
    assert [r["status"] for r in ingest({"Records": [v1]})["results"]] == ["stale"]
    after = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET)["Contents"])
    assert after == before
    manifest = json.loads(
        aws["s3"]
        .get_object(Bucket=OUTPUT_BUCKET, Key=f"embeddings/{key}.manifest.json")["Body"]
        .read()
    )
    assert manifest["count"] == 1
    assert set(after) == {
        f"embeddings/{key}.manifest.json",
        ledger_key(key),
        manifest["files"]["vectors"],
        manifest["files"]["chunks"],
    }
    ingest({"Records": [remove(aws, key)]})
    assert aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET)["KeyCount"] == 1  # the tombstone


@pytest.mark.parametrize("envelope", ["sns", "eventbridge"])
def test_sns_and_eventbridge_envelopes_are_processed_like_direct_events(aws, s3vectors, envelope):
    key = "incoming/kitchen/kettle.txt"
    record = put(aws, key, KETTLE_DOC)
    obj = record["s3"]["object"]
    if envelope == "sns":
        body = {
            "Type": "Notification",
            "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:kettle",
            "Message": json.dumps({"Records": [record]}),
        }
    else:
        body = {
            "version": "0",
            "id": "e1",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{INPUT_BUCKET}"],
            "detail": {
                "version": "0",
                "bucket": {"name": INPUT_BUCKET},
                "object": {
                    "key": obj["key"],
                    "size": obj["size"],
                    "etag": obj["eTag"],
                    "sequencer": obj["sequencer"],
                },
                "reason": "PutObject",
            },
        }
    assert ingest(sqs(body)) == {"batchItemFailures": []}
    assert stored_keys("s3vectors", s3vectors, key)
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    # Removal through the same envelope.
    gone = remove(aws, key)
    if envelope == "sns":
        body["Message"] = json.dumps({"Records": [gone]})
    else:
        body["detail-type"] = "Object Deleted"
        body["detail"]["object"] = {
            "key": obj["key"],
            "sequencer": gone["s3"]["object"]["sequencer"],
        }
    assert ingest(sqs(body)) == {"batchItemFailures": []}
    assert stored_keys("s3vectors", s3vectors, key) == []


UNINTERPRETABLE = [
    ("json-array", [1, 2]),
    ("json-string", "just text"),
    ("no-records", {"hello": "world"}),
    ("empty-records", {"Records": []}),
    ("not-s3", {"Records": [{"eventSource": "aws:dynamodb", "eventName": "INSERT"}]}),
    ("other-s3-event", {"Records": [{**s3_record("incoming/a.txt", "ObjectTagging:Put", 1)}]}),
    (
        "s3-without-object",
        {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]},
    ),
    ("sns-not-json", {"Type": "Notification", "Message": "not json"}),
    (
        "eventbridge-restore",
        {"source": "aws.s3", "detail-type": "Object Restore Completed", "detail": {}},
    ),
]


@pytest.mark.parametrize(("body",), [pytest.param(b, id=i) for i, b in UNINTERPRETABLE])
def test_anything_uninterpretable_is_dead_lettered_with_its_reason(aws, body):
    raw = json.dumps(body) if not isinstance(body, str) else body
    assert ingest(sqs(raw)) == {"batchItemFailures": []}
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "bad_event" and message["reason"], message
    assert message["body"] == raw and message["message_id"] == "msg-0"
    assert "object at 0x" not in message["reason"]


class _Throttling:
    """The handler's s3vectors client, PutVectors throttled ``times`` times (every time: -1)."""

    def __init__(self, real: Any, times: int, code: str = "TooManyRequestsException") -> None:
        self.real, self.times, self.code, self.calls = real, times, code, 0

    def put_vectors(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.times < 0 or self.calls <= self.times:
            status = 429 if self.code == "TooManyRequestsException" else 400
            raise ClientError(
                {
                    "Error": {"Code": self.code, "Message": "slow down"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                "PutVectors",
            )
        return self.real.put_vectors(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The backoff's waits, recorded instead of slept."""
    from handler.sinks import s3vectors

    seen: list[float] = []
    monkeypatch.setattr(s3vectors, "_sleep", seen.append)
    return seen


def _wrap_s3vectors(monkeypatch, wrapper_factory) -> Any:
    from handler import clients

    wrapped = wrapper_factory(clients.client("s3vectors"))
    monkeypatch.setitem(clients._clients, "s3vectors", wrapped)
    return wrapped


def test_throttled_put_vectors_backs_off_then_writes(aws, s3vectors, monkeypatch, waits):
    flaky = _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real, 3))
    key = "incoming/kitchen/kettle.txt"
    assert ingest(sqs({"Records": [put(aws, key, KETTLE_DOC)]})) == {"batchItemFailures": []}
    assert flaky.calls == 4 and len(waits) == 3
    assert stored_keys("s3vectors", s3vectors, key)


def test_always_throttled_goes_back_to_the_queue_not_the_dlq(aws, s3vectors, monkeypatch, waits):
    _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real, -1))
    key = "incoming/kitchen/kettle.txt"
    response = ingest(sqs({"Records": [put(aws, key, KETTLE_DOC)]}))
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    assert len(waits) == 5  # six tries, five waits between them
    # Nothing committed: the ledger says only what the writes may have left (the redelivery
    # syncs it).
    entry = ledger(aws, key)
    assert entry["state"] == "pending" and entry["count"] > 0


def test_a_permanently_failing_sink_dead_letters_and_leaves_nothing_half_synced(
    aws, s3vectors, monkeypatch, waits
):
    monkeypatch.setenv("VECTOR_SINK", "files,s3vectors")
    _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real, -1, code="ValidationException"))
    key = "incoming/kitchen/kettle.txt"
    assert ingest(sqs({"Records": [put(aws, key, KETTLE_DOC)]})) == {"batchItemFailures": []}
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "write_failed" and "PutVectors" in message["reason"], message
    assert message["key"] == key
    left = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET)["Contents"]]
    assert left == [ledger_key(key)]  # the files sink's write was taken back
    assert ledger(aws, key)["state"] == "failed"
    assert stored_keys("s3vectors", s3vectors, key) == []
    assert waits == []  # a refusal is not retried


def test_the_batch_path_retries_transient_errors_and_labels_write_failures(
    aws, s3vectors, monkeypatch, waits
):
    from handler.app import batch_handler
    from handler.batch import TransientBatchError

    for key, text in DOCS.items():
        aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=text.encode())
    items = [{"Key": k} for k in DOCS]
    event = {"Items": items, "BatchInput": {"bucket": INPUT_BUCKET}}
    flaky = _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real, 7))
    summary = batch_handler(event, lambda_context())  # 6 tries in the sink, then the item again
    assert summary["processed"] == 3 and summary["failed"] == [] and flaky.calls == 10
    _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real.real, -1))
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="incoming/new.txt", Body=b"A new one.")
    with pytest.raises(TransientBatchError, match="incoming/new.txt"):
        batch_handler({**event, "Items": [*items, {"Key": "incoming/new.txt"}]}, lambda_context())
    _wrap_s3vectors(monkeypatch, lambda real: _Throttling(real.real, -1, "ValidationException"))
    summary = batch_handler({**event, "Items": [{"Key": "incoming/new.txt"}]}, lambda_context())
    [failure] = summary["failed"]
    assert failure["error"] == "write_failed" and "cannot read" not in failure["reason"]


# ---- search modes --------------------------------------------------------------------------------
def test_qdrant_sparse_and_hybrid(aws, qdrant, call_api):
    ingest_all(aws)
    for mode in ("sparse", "hybrid"):
        response = call_api("POST", "/search", {"query": "bicycle chain oil", "mode": mode})
        assert response.status == 200, response
        body = response.json()
        assert body["mode"] == mode
        assert body["results"][0]["source_key"] == "incoming/garage/bicycle.md"
    # BM25 matches words: a query with none of the corpus's finds nothing sparse.
    none = call_api("POST", "/search", {"query": "zebra", "mode": "sparse"}).json()
    assert none["results"] == []


def test_rerank_reorders_with_the_cross_encoder(
    aws, s3vectors, call_api, rerank_model, monkeypatch
):
    from kettle.rerank import TextCrossEncoder

    models_dir, name = rerank_model
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("KETTLE_RERANK_MODEL", name)
    ingest_all(aws)
    query = {"query": "limescale", "top_k": 3, "candidates": 5}
    plain = call_api("POST", "/search", query).json()["results"]
    reranked = call_api("POST", "/search", {**query, "rerank": True}).json()["results"]
    candidates = call_api("POST", "/search", {**query, "top_k": 5}).json()["results"]
    encoder = TextCrossEncoder(name, models_dir=models_dir)
    scores = [
        float(r.score)
        for r in sorted(
            encoder.rank("limescale", [c["text"] for c in candidates], sigmoid=True),
            key=lambda r: r.index,
        )
    ]
    want = sorted(zip(scores, [c["id"] for c in candidates], strict=True), key=lambda p: -p[0])[:3]
    assert [r["id"] for r in reranked] == [i for _, i in want]
    assert [r["score"] for r in reranked] == pytest.approx([s for s, _ in want], abs=1e-5)
    assert all(0 <= r["score"] <= 1 for r in reranked) and len(plain) == 3


# ---- what a deployment cannot serve, and bad requests --------------------------------------------
def test_a_mode_the_sink_cannot_serve_is_a_422_naming_what_it_needs(
    aws, s3vectors, call_api, monkeypatch
):
    for mode in ("sparse", "hybrid"):
        response = call_api("POST", "/search", {"query": "x", "mode": mode})
        assert response.status == 422, response
        error = response.error
        assert error["code"] == "mode_not_available" and error["param"] == "mode"
        assert "qdrant" in error["message"] and "SPARSE_VECTORS" in error["message"]
        assert "VECTOR_SINK=s3vectors" in error["message"]
    response = call_api("POST", "/search", {"query": "x", "rerank": True})
    assert response.status == 422 and "KETTLE_RERANK_MODEL" in response.error["message"]
    monkeypatch.setenv("VECTOR_SINK", "files")
    response = call_api("POST", "/search", {"query": "x"})
    assert response.status == 422
    message = response.error["message"]
    assert "s3vectors or qdrant" in message and "all-MiniLM-L6-v2" in message


BAD_SEARCHES = [
    ({}, "query"),
    ({"query": ""}, "query"),
    ({"query": "x", "top_k": 0}, "top_k"),
    ({"query": "x", "top_k": 101}, "top_k"),
    ({"query": "x", "mode": "lexical"}, "mode"),
    ({"query": "x", "candidates": 0}, "candidates"),
    ({"query": "x", "filter": {"source_prefix": ""}}, "filter.source_prefix"),
    ({"query": "x", "filter": {"prefix": "a/"}}, "filter"),
    ({"query": "x", "rerank": "yes"}, "rerank"),
    ({"query": ["x"]}, "query"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SEARCHES)
def test_bad_search_requests_are_422s_naming_the_field(aws, s3vectors, call_api, body, field):
    response = call_api("POST", "/search", body)
    assert response.status == 422, response
    error = response.error
    assert error["param"].startswith(field), error


def test_search_is_in_the_openapi_document(call_api):
    spec = call_api("GET", "/openapi.json").json()
    operation = spec["paths"]["/search"]["post"]
    assert operation["operationId"] == "search"
    assert "422" in operation["responses"]
    schemas = spec["components"]["schemas"]
    assert {"query", "top_k", "mode", "rerank", "candidates", "filter"} <= set(
        schemas["SearchRequest"]["properties"]
    )


def test_exact_cosine_query_vectors_against_numpy(aws, s3vectors):
    """The test double itself: moto's stored vectors, ranked by exact cosine distance."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(20, 384)).astype(np.float32)
    s3vectors.put_vectors(
        vectorBucketName=VECTOR_BUCKET,
        indexName=VECTOR_INDEX,
        vectors=[{"key": f"k{i}", "data": {"float32": row.tolist()}} for i, row in enumerate(data)],
    )
    q = rng.normal(size=384).astype(np.float32)
    got = s3vectors.query_vectors(
        vectorBucketName=VECTOR_BUCKET,
        indexName=VECTOR_INDEX,
        topK=5,
        queryVector={"float32": q.tolist()},
        returnDistance=True,
    )["vectors"]
    cos = data @ q / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
    order = np.argsort(-cos)[:5]
    assert [v["key"] for v in got] == [f"k{i}" for i in order]
    np.testing.assert_allclose([v["distance"] for v in got], 1 - cos[order], atol=1e-5)


# ---- the bucket's own notifications, races, the Qdrant key ---------------------------------------
def test_the_bucket_notifies_the_queue_and_the_handler_drains_it(aws, s3vectors, call_api):
    """moto's S3 sends its notifications (as S3 shapes them) to a moto queue; the handler gets
    the queue's messages as Lambda's event source hands them over."""
    sqs = aws["sqs"]
    queue = sqs.create_queue(QueueName="kettle-ingest")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws["s3"].put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )

    def drain() -> None:
        for _ in range(10):
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return
            assert ingest(sqs_event_of(messages)) == {"batchItemFailures": []}
            for m in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    for key, text in DOCS.items():
        aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=text.encode())
    drain()  # the test event S3 sends on wiring is ignored, the objects synced
    found = call_api("POST", "/search", {"query": "limescale", "top_k": 1}).json()["results"]
    assert found[0]["source_key"] == "incoming/kitchen/kettle.txt"
    aws["s3"].delete_object(Bucket=INPUT_BUCKET, Key="incoming/kitchen/kettle.txt")
    drain()
    assert stored_keys("s3vectors", s3vectors, "incoming/kitchen/kettle.txt") == []
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []


def sqs_event_of(messages: list[dict]) -> dict:
    event = sqs(*(m["Body"] for m in messages))
    for record, m in zip(event["Records"], messages, strict=True):
        record["messageId"] = m["MessageId"]
    return event


def test_a_lost_ledger_race_writes_the_newer_version_again(aws, s3vectors, monkeypatch):
    """v1's function writes its vectors while v2's commits first: v1's commit loses, and the
    pipeline writes v2 again over whatever v1 left, so the index ends with v2 alone."""
    from handler.ingest.ledger import Ledger

    aws["s3"].put_bucket_versioning(
        Bucket=INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "incoming/race.txt"
    v1 = put(aws, key, LONG)  # 12+ chunks: more rows than v2 has
    v1["s3"]["object"]["versionId"] = aws["s3"].head_object(Bucket=INPUT_BUCKET, Key=key)[
        "VersionId"
    ]
    v2 = put(aws, key, "The second version, one chunk.")
    real_commit = Ledger.commit
    raced: list[bool] = []

    def commit(self, entry, etag):
        if not raced:  # v2 lands between v1's read and v1's commit
            raced.append(True)
            assert ingest({"Records": [v2]})["results"][0]["status"] == "embedded"
        return real_commit(self, entry, etag)

    monkeypatch.setattr(Ledger, "commit", commit)
    [outcome] = ingest({"Records": [v1]})["results"]
    assert raced and outcome["status"] == "embedded" and outcome["count"] == 1
    assert stored_keys("s3vectors", s3vectors, key) == [f"{key}#0"]  # v1's 12 rows are gone
    [vector] = s3vectors.get_vectors(
        vectorBucketName=VECTOR_BUCKET,
        indexName=VECTOR_INDEX,
        keys=[f"{key}#0"],
        returnMetadata=True,
    )["vectors"]
    assert vector["metadata"]["text"] == "The second version, one chunk."
    assert ledger(aws, key)["sequencer"] == v2["s3"]["object"]["sequencer"]


@pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])
def test_the_qdrant_api_key_comes_from_secrets_manager_or_ssm(aws, kind):
    import boto3

    from handler.sinks.qdrant import resolve_api_key

    if kind == "secretsmanager":
        ref = boto3.client("secretsmanager").create_secret(Name="qdrant", SecretString="s3cr3t")[
            "ARN"
        ]
    else:
        boto3.client("ssm").put_parameter(
            Name="/kettle/qdrant", Value="s3cr3t", Type="SecureString"
        )
        ref = "arn:aws:ssm:us-east-1:123456789012:parameter/kettle/qdrant"
    assert resolve_api_key(ref) == "s3cr3t"
    assert resolve_api_key("") is None


def test_filterable_metadata_stays_under_two_kilobytes():
    from handler.sinks.base import ChunkRecord, EmbeddedSource
    from handler.sinks.s3vectors import FILTERABLE_LIMIT, _size, metadata_for

    key = "/".join(f"folder-{i:03d}-" + "x" * 20 for i in range(40)) + "/doc.txt"  # ~1 KB key
    record = ChunkRecord("doc#0", "doc", key, 0, 5, 2, "0" * 64)
    done = EmbeddedSource(
        source={"key": key, "etag": "e" * 32},
        model={"name": "m", "fingerprint": "f" * 64},
        chunking={},
        vectors=np.zeros((1, 3), np.float32),
        records=[record],
        documents=1,
        texts=["hello"],
    )
    meta = metadata_for(done, 0)
    filterable = {k: v for k, v in meta.items() if k != "text"}
    assert _size(filterable) <= FILTERABLE_LIMIT
    assert meta["dirs"] and meta["dirs"][0] == "folder-000-" + "x" * 20 + "/"
    assert meta["text"] == "hello" and meta["source_key"] == key


def test_vector_sink_names_are_checked(monkeypatch):
    from handler.settings import Settings, SettingsError

    monkeypatch.setenv("VECTOR_SINK", "files, s3vectors")
    assert Settings.from_env().vector_sinks == ("files", "s3vectors")
    monkeypatch.setenv("VECTOR_SINK", "files,pinecone")
    with pytest.raises(SettingsError, match="pinecone"):
        Settings.from_env()
    monkeypatch.setenv("VECTOR_SINK", "qdrant")
    monkeypatch.setenv("SPARSE_VECTORS", "tfidf")
    with pytest.raises(SettingsError, match="SPARSE_VECTORS"):
        Settings.from_env()


AWS_DENIAL = (
    "User: arn:aws:sts::123456789012:assumed-role/kettle-api-role/kettle-fn is not authorized to "
    "perform: s3vectors:QueryVectors on resource: "
    "arn:aws:s3vectors:us-east-1:123456789012:bucket/vb/index/ix"
)
SECRETS = ("123456789012", "arn:", "kettle-api-role", "assumed-role", "bucket/vb")


@pytest.fixture
def logged(monkeypatch) -> Any:
    """logged() -> the JSON log records the handler's logger wrote since the fixture began."""
    import io

    from handler.observability import logger

    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    return lambda: [json.loads(x) for x in stream.getvalue().splitlines() if x.startswith("{")]


def test_a_failing_search_backend_is_a_502_that_leaks_nothing(
    aws, s3vectors, call_api, monkeypatch, logged
):
    """The AWS error (account id, role, index ARN) goes to the log with the request id; the
    answer names the dependency only."""
    from handler import clients

    class Broken:
        def query_vectors(self, **kwargs):
            from botocore.exceptions import ClientError

            raise ClientError(
                {
                    "Error": {"Code": "AccessDeniedException", "Message": AWS_DENIAL},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
                "QueryVectors",
            )

    monkeypatch.setitem(clients._clients, "s3vectors", Broken())
    response = call_api("POST", "/search", {"query": "x"})
    assert response.status == 502, response
    error = response.error
    assert error["code"] == "search_backend_error" and "s3vectors" in error["message"]
    assert not any(secret in response.text for secret in SECRETS), response.text
    request_id = response.json()["request_id"]
    [error_log] = [r for r in logged() if r.get("level") == "ERROR"]
    assert error_log["function_request_id"] == request_id and AWS_DENIAL in error_log["exception"]


def test_a_qdrant_server_that_is_down_is_a_502_not_a_500(aws, call_api, monkeypatch, logged):
    import socket

    from handler.sinks import qdrant as sink

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("VECTOR_SINK", "qdrant")
    monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("QDRANT_PATH", raising=False)
    try:
        response = call_api("POST", "/search", {"query": "x"})
    finally:
        sink.close_clients()
    assert response.status == 502, response
    error = response.error
    assert error["code"] == "search_backend_error" and "qdrant" in error["message"]
    assert str(port) not in response.text and "127.0.0.1" not in response.text
    [error_log] = [r for r in logged() if r.get("level") == "ERROR"]
    assert error_log["function_request_id"] == response.json()["request_id"]
    assert "Connection refused" in error_log["exception"]
