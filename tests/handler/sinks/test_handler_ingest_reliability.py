"""Ingestion under failure, each case one the reliability probe of issue 22 found: ordering kept
across skipped events, a version written whole or not at all under persistent throttling, messages
that cannot be parsed, an unreadable new version, keys past 1,000 bytes, S3's sequencer order.

S3, SQS and S3 Vectors are moto's (tests/handler/_moto_s3vectors.py adds QueryVectors); Qdrant is
qdrant-client's local mode. The fixtures and event builders are test_handler_search's.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import test_handler_search as search
from _handler_helpers import OUTPUT_BUCKET, dlq_messages
from test_handler_search import (
    KETTLE_DOC,
    LONG,
    _wrap_s3vectors,
    ingest,
    ledger,
    ledger_key,
    put,
    remove,
    sqs,
    stored_keys,
)

# test_handler_search's fixtures, used here by name.
qdrant, s3vectors, sink = search.qdrant, search.s3vectors, search.sink
small_chunks, waits = search.small_chunks, search.waits

OK = {"batchItemFailures": []}
RETRY = {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}


def receive(body: Any, count: int) -> dict:
    """One SQS message on its ``count``-th receive."""
    event = sqs(body)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(count)
    return event


def output_keys(aws) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def throttle_error(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        operation,
    )


class _ThrottledAfter:
    """The handler's s3vectors client: PutVectors answers ``ok`` calls, then is throttled on
    every later one (every try of every receive)."""

    def __init__(self, real: Any, ok: int) -> None:
        self.real, self.ok, self.calls = real, ok, 0

    def put_vectors(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.ok:
            raise throttle_error("PutVectors")
        return self.real.put_vectors(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


# ---- 7: sequencers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "older"),
    [
        # AWS: right-pad the shorter with zeros, then compare as strings.
        ("0055AED6DCD90281E6", "0055AED6DCD90281E50A", False),  # ...E600 comes after ...E50A
        ("0055AED6DCD90281E50A", "0055AED6DCD90281E6", True),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E500", False),  # the same once padded
        ("0055AED6DCD90281E500", "0055AED6DCD90281E5", False),
        ("0055AED6DCD90281E4", "0055AED6DCD90281E5", True),
        ("0055AED6DCD90281E5", None, False),  # unknown: never older
    ],
)
def test_sequencers_compare_right_padded_as_strings(a, b, older):
    from handler.ingest.ledger import is_older

    assert is_older(a, b) is older


def test_a_shorter_newer_sequencer_is_not_stale(aws, s3vectors):
    key = "incoming/kitchen/kettle.txt"
    first = put(aws, key, "The first text.")
    first["s3"]["object"]["sequencer"] = "0055AED6DCD90281E50A"
    assert ingest({"Records": [first]})["results"][0]["status"] == "embedded"
    second = put(aws, key, KETTLE_DOC)
    second["s3"]["object"]["sequencer"] = "0055AED6DCD90281E6"
    assert ingest({"Records": [second]})["results"][0]["status"] == "embedded"
    assert ledger(aws, key)["sequencer"] == "0055AED6DCD90281E6"


# ---- 1: a skipped event still orders ------------------------------------------------------------
def test_a_skipped_create_advances_the_sequencer_so_a_late_delete_is_stale(aws, sink):
    name, client = sink
    key = "incoming/kitchen/kettle.txt"
    assert ingest(sqs({"Records": [put(aws, key, KETTLE_DOC)]})) == OK
    rows = stored_keys(name, client, key)
    gone = remove(aws, key)
    again = put(aws, key, KETTLE_DOC)  # the same bytes: the same etag (a non-versioned bucket)
    # SQS delivers the new create before the delete.
    assert ingest({"Records": [again]})["results"][0]["status"] == "skipped"
    assert ledger(aws, key)["sequencer"] == again["s3"]["object"]["sequencer"]
    assert ingest({"Records": [gone]})["results"][0]["status"] == "stale"
    assert rows and stored_keys(name, client, key) == rows


# ---- 2: versions whole under throttling ---------------------------------------------------------
def test_a_version_throttled_through_every_receive_is_rolled_back_and_dead_lettered(
    aws, s3vectors, monkeypatch, waits
):
    from handler.sinks import s3vectors as module

    monkeypatch.setattr(module, "MAX_VECTORS_PER_PUT", 5)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "3")
    key = "incoming/notes.txt"
    assert ingest(sqs({"Records": [put(aws, key, LONG)]})) == OK
    assert len(stored_keys("s3vectors", s3vectors, key)) > 10
    v2 = put(aws, key, LONG.replace("kettles", "teapots"))
    _wrap_s3vectors(monkeypatch, lambda real: _ThrottledAfter(real, 1))
    assert ingest(receive({"Records": [v2]}, 1)) == RETRY
    assert ingest(receive({"Records": [v2]}, 2)) == RETRY
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    # The last receive SQS gives it: kettle dead-letters it, with the counts, before the redrive.
    assert ingest(receive({"Records": [v2]}, 3)) == OK
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "throttled" and message["key"] == key, message
    assert "receive 3 of 3" in message["reason"] and "PutVectors" in message["reason"]
    assert re.search(r"\d+ of \d+ rows written", message["reason"]), message["reason"]
    assert message["receive_count"] == 3 and message["max_receive_count"] == 3
    # Neither v1 nor a part of v2: the object is nothing until a version syncs.
    assert stored_keys("s3vectors", s3vectors, key) == []
    entry = ledger(aws, key)
    assert entry["state"] == "failed" and entry["sequencer"] == v2["s3"]["object"]["sequencer"]


def test_a_delete_after_a_half_written_version_removes_every_row(
    aws, s3vectors, monkeypatch, waits
):
    from handler import clients
    from handler.sinks import s3vectors as module

    monkeypatch.setattr(module, "MAX_VECTORS_PER_PUT", 5)
    key = "incoming/notes.txt"
    assert ingest(sqs({"Records": [put(aws, key, "Short.")]})) == OK
    v2 = put(aws, key, LONG)  # 12+ rows: two puts of 5 land, then throttling
    flaky = _wrap_s3vectors(monkeypatch, lambda real: _ThrottledAfter(real, 2))
    assert ingest(receive({"Records": [v2]}, 1)) == RETRY
    assert len(stored_keys("s3vectors", s3vectors, key)) == 10
    monkeypatch.setitem(clients._clients, "s3vectors", flaky.real)
    assert ingest({"Records": [remove(aws, key)]})["results"][0]["status"] == "deleted"
    assert stored_keys("s3vectors", s3vectors, key) == []
    assert ingest(receive({"Records": [v2]}, 2)) == OK  # stale now
    assert stored_keys("s3vectors", s3vectors, key) == []


def test_a_throttled_version_resumes_whole_on_the_next_receive(aws, s3vectors, monkeypatch, waits):
    from handler import clients
    from handler.sinks import s3vectors as module

    monkeypatch.setattr(module, "MAX_VECTORS_PER_PUT", 5)
    key = "incoming/notes.txt"
    assert ingest(sqs({"Records": [put(aws, key, LONG)]})) == OK
    v2 = put(aws, key, "The second version, one chunk.")
    flaky = _wrap_s3vectors(monkeypatch, lambda real: _ThrottledAfter(real, 0))
    assert ingest(receive({"Records": [v2]}, 1)) == RETRY
    monkeypatch.setitem(clients._clients, "s3vectors", flaky.real)
    assert ingest(receive({"Records": [v2]}, 2)) == OK
    assert stored_keys("s3vectors", s3vectors, key) == [f"{key}#0"]
    assert ledger(aws, key)["state"] == "synced" and ledger(aws, key)["count"] == 1


# ---- 3: messages that cannot be parsed ----------------------------------------------------------
DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"a": ' * DEEP + "1" + "}" * DEEP,
        json.dumps({"Type": "Notification", "Message": "[" * DEEP + "]" * DEEP}),
    ],
    ids=["array", "object", "sns-message"],
)
def test_a_message_nested_a_hundred_thousand_levels_is_a_bad_event(aws, body):
    assert ingest(sqs(body)) == OK
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "bad_event" and "nested" in message["reason"], message
    assert message["message_id"] == "msg-0"


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("incoming/deep.json", b"[" * DEEP + b"]" * DEEP),
        ("incoming/deep.jsonl", b'{"id": 1, "text": ' + b"[" * DEEP + b"]" * DEEP + b"}\n"),
    ],
    ids=["json", "jsonl"],
)
def test_a_deeply_nested_document_is_a_bad_document(aws, key, body):
    assert ingest(sqs({"Records": [put(aws, key, body.decode())]})) == OK
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "bad_document" and "nested" in message["reason"], message


# ---- 5: an unreadable new version ---------------------------------------------------------------
def test_an_unreadable_new_version_removes_the_old_one_from_every_sink(aws, sink, monkeypatch):
    name, client = sink
    monkeypatch.setenv("VECTOR_SINK", f"files,{name}")
    key = "incoming/faq.jsonl"
    good = json.dumps({"id": "a", "text": KETTLE_DOC}) + "\n"
    assert ingest(sqs({"Records": [put(aws, key, good)]})) == OK
    assert stored_keys(name, client, key)
    v2 = put(aws, key, '{"id": "a", "text": "fine"}\n{"id": "b", "text": \n')
    assert ingest(sqs({"Records": [v2]})) == OK
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "bad_document" and "line 2" in message["reason"]
    assert stored_keys(name, client, key) == []
    assert output_keys(aws) == [ledger_key(key)]  # the files sink's manifest and files too
    entry = ledger(aws, key)
    assert entry["state"] == "failed" and entry["sequencer"] == v2["s3"]["object"]["sequencer"]
    # A readable version syncs again.
    assert ingest(sqs({"Records": [put(aws, key, good)]})) == OK
    assert stored_keys(name, client, key) and ledger(aws, key)["state"] == "synced"


# ---- 6: keys past 1,000 bytes -------------------------------------------------------------------
MAX_KEY_BYTES = 1024  # S3's object keys and S3 Vectors' vector keys


def _too_long(operation: str, key: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": "KeyTooLongError", "Message": f"key of {len(key.encode())} bytes"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class _KeyLimit:
    """A client that refuses keys over 1,024 bytes, as S3 and S3 Vectors do (moto does not)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def checked(**kwargs: Any) -> Any:
            keys = [kwargs["Key"]] if "Key" in kwargs else []
            keys += [o["Key"] for o in kwargs.get("Delete", {}).get("Objects", [])]
            keys += [v["key"] for v in kwargs.get("vectors", []) if isinstance(v, dict)]
            keys += list(kwargs.get("keys", []))
            for key in keys:
                if len(key.encode("utf-8")) > MAX_KEY_BYTES:
                    raise _too_long(name, key)
            return method(**kwargs)

        return checked


def test_a_key_over_a_thousand_bytes_syncs_and_deletes(aws, s3vectors, monkeypatch):
    from handler import clients

    monkeypatch.setenv("VECTOR_SINK", "files,s3vectors")
    key = "incoming/" + "a-long-name/" * 83 + "notes.txt"
    assert 1000 < len(key.encode()) <= MAX_KEY_BYTES
    for service in ("s3", "s3vectors"):
        monkeypatch.setitem(clients._clients, service, _KeyLimit(clients.client(service)))
    assert ingest(sqs({"Records": [put(aws, key, KETTLE_DOC)]})) == OK
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    assert len(stored_keys("s3vectors", s3vectors, key)) > 1
    entry = ledger(aws, key)
    assert entry["key"] == key and entry["state"] == "synced"
    assert len(output_keys(aws)) == 4  # .npy, .jsonl, manifest, ledger
    assert ingest(sqs({"Records": [remove(aws, key)]})) == OK
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    assert stored_keys("s3vectors", s3vectors, key) == []
    assert output_keys(aws) == [ledger_key(key)] and ledger(aws, key)["state"] == "deleted"


# ---- 4: large objects ---------------------------------------------------------------------------
class _Context:
    """A Lambda context with ``seconds`` left."""

    function_name = "kettle-test"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:kettle-test"
    aws_request_id = "req-1"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_an_object_that_cannot_finish_in_the_time_left_waits_for_another_invocation(aws):
    from handler.app import s3_handler
    from handler.settings import Settings

    rate = Settings.from_env().ingest_bytes_per_second
    small = put(aws, "incoming/small.txt", KETTLE_DOC)
    large = put(aws, "incoming/large.txt", KETTLE_DOC)
    large["s3"]["object"]["size"] = rate * 200  # 200 s of work, as the event says
    event = sqs({"Records": [small]}, {"Records": [large]})
    assert s3_handler(event, _Context(100)) == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []
    # First in an invocation, it goes ahead (its real size is small: it syncs).
    assert s3_handler(sqs({"Records": [large]}), _Context(100)) == OK
    assert ledger(aws, "incoming/large.txt")["state"] == "synced"


def test_the_default_object_limit_is_the_one_the_docs_state_and_is_dead_lettered(aws):
    import yaml
    from _handler_helpers import REPO

    from handler.settings import DEFAULT_MAX_OBJECT_BYTES

    readme = (REPO / "docs" / "lambda.md").read_text()
    stated = re.search(r"`MAX_OBJECT_BYTES` defaults to ([\d,]+) bytes", readme)
    assert stated and int(stated.group(1).replace(",", "")) == DEFAULT_MAX_OBJECT_BYTES

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=Loader)
    assert template["Parameters"]["MaxObjectBytes"]["Default"] == DEFAULT_MAX_OBJECT_BYTES
    record = put(aws, "incoming/big.txt", KETTLE_DOC)
    record["s3"]["object"]["size"] = DEFAULT_MAX_OBJECT_BYTES + 1
    assert ingest(sqs({"Records": [record]})) == OK
    [message] = dlq_messages(aws["sqs"], aws["dlq"])
    assert message["error"] == "too_large", message
    assert f"at most {DEFAULT_MAX_OBJECT_BYTES}" in message["reason"]
    assert "MAX_OBJECT_BYTES" in message["reason"]


def test_an_entry_from_before_the_digest_is_read_once_and_moved(aws, s3vectors):
    """A deployment upgraded in place keeps what its ledger counted: the old entry (keyed by the
    object key) is read when the digest-keyed one is missing, so a shorter new version still
    removes the rows the old one had."""
    from handler.ingest.ledger import Ledger

    key = "incoming/notes.txt"
    assert ingest({"Records": [put(aws, key, LONG)]})["results"][0]["status"] == "embedded"
    rows = stored_keys("s3vectors", s3vectors, key)
    entry = aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=ledger_key(key))["Body"].read()
    legacy = Ledger(None, OUTPUT_BUCKET, "embeddings/").legacy_key(key)
    aws["s3"].put_object(Bucket=OUTPUT_BUCKET, Key=legacy, Body=entry)
    aws["s3"].delete_object(Bucket=OUTPUT_BUCKET, Key=ledger_key(key))
    assert len(rows) > 1
    assert ingest({"Records": [put(aws, key, "Short now.")]})["results"][0]["count"] == 1
    assert stored_keys("s3vectors", s3vectors, key) == [f"{key}#0"]
    assert ledger(aws, key)["state"] == "synced"
