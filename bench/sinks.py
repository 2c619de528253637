"""Ingestion throughput per vector sink, and warm POST /search latency per mode.

    .venv/bin/python bench/sinks.py [--quick]     (make bench runs it after the others)

Ingestion: the same documents (paragraphs of Python's stdlib docstrings, bench/corpus.py) put in a
moto S3 bucket and handed to handler.app.s3_handler as SQS batches of 10 messages, once per
sink: files (the default), s3vectors (moto's S3 Vectors) and qdrant (qdrant-client's local mode),
documents/s after one warm-up batch (the model loads there). S3, SQS and S3 Vectors are moto's, in
process: the figures compare kettle's own path per sink (chunk, embed, write, ledger), not AWS's
service latencies, which are the real limit at scale (README: the million-document section).

Search: POST /search through the local HTTP server (handler.local, 127.0.0.1) over the qdrant
store ingested above (dense, sparse = BM25, hybrid = RRF of both) and the s3vectors one (dense),
warm: p50/p95 over repeated queries after a warm-up. Writes bench/results/sinks.{json,md}
(bench/out/quick with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

BUCKET, OUTPUTS = "bench-in", "bench-out"
QUERIES = [
    "how to open a file for reading",
    "parse command line arguments",
    "compare two floating point numbers",
    "thread safe queue",
    "encode text as bytes",
    "sort a list in place",
]


def documents(count: int, per_doc: int = 8) -> dict[str, str]:
    texts = corpus.sentences()
    return {
        f"incoming/doc{i:05d}.txt": " ".join(texts[i * per_doc : (i + 1) * per_doc])
        for i in range(count)
    }


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "body": json.dumps({"Records": [r]}),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1",
            }
            for i, r in enumerate(records)
        ]
    }


def record(key: str, etag: str, size: int, sequencer: int) -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": BUCKET},
            "object": {"key": key, "eTag": etag, "size": size, "sequencer": f"{sequencer:016X}"},
        },
    }


def ingest(sink: str, docs: dict[str, str], store: Path) -> dict[str, Any]:
    """Documents/s through s3_handler into ``sink`` (a fresh moto world each time)."""
    import boto3
    from moto import mock_aws

    from handler import clients
    from handler.app import s3_handler
    from handler.local import LocalContext
    from handler.sinks.qdrant import close_clients

    env = {"VECTOR_SINK": sink, "OUTPUT_BUCKET": OUTPUTS, "INPUT_PREFIX": "incoming/"}
    if sink == "s3vectors":
        env.update(VECTOR_BUCKET="bench-vectors", VECTOR_INDEX="chunks")
    if sink == "qdrant":
        shutil.rmtree(store, ignore_errors=True)
        env.update(QDRANT_PATH=str(store), SPARSE_VECTORS="bm25")
    os.environ.update(env)
    with mock_aws():
        clients.reset()
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=OUTPUTS)
        os.environ["DLQ_URL"] = sqs.create_queue(QueueName="bench-dlq")["QueueUrl"]
        if sink == "s3vectors":
            v = boto3.client("s3vectors")
            v.create_vector_bucket(vectorBucketName="bench-vectors")
            v.create_index(
                vectorBucketName="bench-vectors",
                indexName="chunks",
                dataType="float32",
                dimension=384,
                distanceMetric="cosine",
            )
        records = []
        for n, (key, text) in enumerate(docs.items()):
            body = text.encode()
            etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
            records.append(record(key, etag, len(body), n + 1))
        batches = [records[i : i + 10] for i in range(0, len(records), 10)]
        s3_handler(sqs_event(batches[0]), LocalContext(timeout_s=300))  # warm-up: the model loads
        started = time.perf_counter()
        failures = 0
        for batch in batches[1:]:
            failures += len(
                s3_handler(sqs_event(batch), LocalContext(timeout_s=300))["batchItemFailures"]
            )
        seconds = time.perf_counter() - started
        timed = sum(len(b) for b in batches[1:])
        result = {"sink": sink, "documents": timed, "seconds": round(seconds, 3)}
        result["docs_per_s"] = round(timed / seconds, 1)
        result["failures"] = failures
        if sink == "s3vectors":
            result["search"] = search_latencies(["dense"], repeats=REPEATS[0])
        close_clients()
        clients.reset()
    return result


REPEATS = [30]


def search_latencies(modes: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Warm POST /search latency (ms) per mode through the local server on 127.0.0.1."""
    from handler.local import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/search"
    out: dict[str, dict[str, float]] = {}
    try:
        for mode in modes:
            times = []
            for i in range(repeats + 3):
                body = json.dumps({"query": QUERIES[i % len(QUERIES)], "mode": mode}).encode()
                request = urllib.request.Request(url, body, {"content-type": "application/json"})
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200
                    json.loads(response.read())
                if i >= 3:  # three warm-ups
                    times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out[mode] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[max(0, int(0.95 * len(times)) - 1)], 2),
                "n": len(times),
            }
    finally:
        server.shutdown()
        server.server_close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (60 documents)")
    parser.add_argument("--documents", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    count = args.documents or (60 if args.quick else 400)
    REPEATS[0] = 10 if args.quick else 50
    out = Path(args.out or (ROOT / ("bench/out/quick" if args.quick else "bench/results")))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="ERROR",
        KETTLE_THREADS=os.environ.get("KETTLE_THREADS", "2"),
    )
    os.environ.setdefault("KETTLE_MODELS_DIR", str(ROOT / "models"))
    sys.path.insert(0, str(ROOT / "tests" / "handler"))
    import _moto_s3vectors  # QueryVectors for moto (the tests' exact-cosine one)

    _moto_s3vectors.install()
    docs = documents(count)
    store = Path(tempfile.mkdtemp(prefix="kettle-bench-qdrant-"))
    results: list[dict[str, Any]] = []
    for sink in ("files", "s3vectors", "qdrant"):
        print(f"[sinks] ingest {len(docs)} documents -> {sink}", file=sys.stderr, flush=True)
        results.append(ingest(sink, docs, store / "q"))
    # Search over the qdrant store just written (local mode needs no moto).
    os.environ.update(VECTOR_SINK="qdrant", QDRANT_PATH=str(store / "q"), SPARSE_VECTORS="bm25")
    qdrant_search = search_latencies(["dense", "sparse", "hybrid"], REPEATS[0])
    from handler.sinks.qdrant import close_clients

    close_clients()
    shutil.rmtree(store, ignore_errors=True)
    files_rate = results[0]["docs_per_s"]
    for r in results:
        r["vs_files"] = round(r["docs_per_s"] / files_rate, 2)
    report = {
        "documents": count,
        "threads": os.environ["KETTLE_THREADS"],
        "ingest": results,
        "search": {"qdrant": qdrant_search, "s3vectors": results[1].get("search", {})},
    }
    (out / "sinks.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Sinks: ingestion and search",
        "",
        f"`.venv/bin/python bench/sinks.py{' --quick' if args.quick else ''}`: {count} documents "
        f"(~8 sentences each), SQS batches of 10, KETTLE_THREADS={report['threads']}; moto for "
        "S3/SQS/S3 Vectors, qdrant-client local mode.",
        "",
        "| sink | documents/s | vs files |",
        "|---|---:|---:|",
        *(f"| {r['sink']} | {r['docs_per_s']} | {r['vs_files']}x |" for r in results),
        "",
        "| POST /search (warm, 127.0.0.1) | p50 ms | p95 ms |",
        "|---|---:|---:|",
        *(
            f"| {sink} {mode} | {v['p50_ms']} | {v['p95_ms']} |"
            for sink, modes in report["search"].items()
            for mode, v in modes.items()
        ),
        "",
    ]
    (out / "sinks.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
