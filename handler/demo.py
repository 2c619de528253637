"""`make run`'s service demo: the whole serverless path on this machine, no AWS account.

    python -m handler.demo run [--store DIR]   documents -> S3 bucket -> S3 notifications -> SQS ->
                                               handler.app.s3_handler -> the qdrant sink (local
                                               mode in DIR) -> POST /search through api_handler
    python -m handler.demo env [--store DIR]   the environment `make serve` uses to serve /search
                                               over the same store (shell lines)

S3 and SQS are moto's, in process (the bucket's notifications reach the queue as S3 sends them);
the vector store is qdrant-client's embedded local mode with dense and BM25 sparse vectors, kept
in DIR (default .kettle-demo/qdrant), so `make serve` afterwards answers /search over it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_STORE = Path(".kettle-demo") / "qdrant"
BUCKET = "kettle-demo-in"
OUTPUTS = "kettle-demo-out"
DOCUMENTS = {
    "incoming/kitchen/kettle.txt": (
        "Descale the kettle every few weeks: limescale builds up in hard-water areas. Fill it with "
        "equal parts water and white vinegar, boil, leave it for an hour and rinse it well."
    ),
    "incoming/kitchen/tea.md": (
        "Green tea wants water at about 80 degrees Celsius; boiling water makes it bitter. Black "
        "tea takes boiling water and three to five minutes."
    ),
    "incoming/garage/bicycle.md": (
        "Oil the bicycle chain after riding in the rain. Wipe off the old grease first, then put "
        "one drop of oil on each link and turn the pedals backwards."
    ),
    "incoming/garden/roses.jsonl": "\n".join(
        json.dumps(d)
        for d in [
            {"id": "prune", "text": "Prune roses in late winter, just above an outward bud."},
            {"id": "feed", "text": "Feed roses in spring and again after the first flowering."},
        ]
    ),
}
QUERIES = [
    ("how do I get rid of limescale?", "dense"),
    ("chain oil", "sparse"),
    ("what temperature for green tea", "hybrid"),
]


def store_env(store: Path) -> dict[str, str]:
    """What the handler reads to use the demo's store."""
    return {
        "VECTOR_SINK": "qdrant",
        "QDRANT_PATH": str(store.resolve()),
        "SPARSE_VECTORS": "bm25",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "kettle",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "kettle",
    }


def _sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Messages as Lambda's SQS event source hands them over."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def run(store: Path) -> int:
    import shutil

    if store.exists():
        shutil.rmtree(store)  # a fresh store each run: the demo shows ingestion from empty
    store.parent.mkdir(parents=True, exist_ok=True)
    fake = {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({**fake, **store_env(store)})
    os.environ.setdefault("KETTLE_MODELS_DIR", "models")
    import boto3
    from moto import mock_aws

    from handler import clients
    from handler.app import api_handler, s3_handler
    from handler.local import LocalContext, http_api_event
    from handler.sinks.qdrant import close_clients

    with mock_aws():
        clients.reset()
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=OUTPUTS)
        queue = sqs.create_queue(QueueName="kettle-demo-ingest")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="kettle-demo-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        queue_arn = arn["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
                ]
            },
        )
        os.environ.update(OUTPUT_BUCKET=OUTPUTS, DLQ_URL=dlq, INPUT_PREFIX="incoming/")
        print(f"1. {len(DOCUMENTS)} documents put in s3://{BUCKET}/incoming/")
        for key, text in DOCUMENTS.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
        started = time.perf_counter()
        batches = 0
        while True:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=5)
            messages = got.get("Messages", [])
            if not messages:
                break
            answer = s3_handler(_sqs_event(messages, queue_arn), LocalContext(timeout_s=300))
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            for m in messages:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
            batches += 1
            if batches > 20:
                print("the queue does not drain", file=sys.stderr)
                return 1
        seconds = time.perf_counter() - started
        print(
            f"2. the notifications went through SQS to s3_handler in {batches} batch(es), "
            f"{seconds:.2f} s (the model loaded on the first)"
        )
        dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
        for m in dead:
            print("   dead-lettered:", json.loads(m["Body"])["reason"], file=sys.stderr)
        if dead:
            return 1
        from handler.settings import Settings
        from handler.sinks.qdrant import qdrant_client

        points = qdrant_client(path=Settings.from_env().qdrant_path).count("kettle").count
        print(f"3. the qdrant sink holds {points} chunks (dense + BM25) in {store}")
        print("4. POST /search through api_handler:")
        for query, mode in QUERIES:
            body = json.dumps({"query": query, "mode": mode, "top_k": 2}).encode()
            event = http_api_event("POST", "/search", {"content-type": "application/json"}, body)
            response = api_handler(event, LocalContext())
            found = json.loads(response["body"])
            if response["statusCode"] != 200:
                print(f"   {mode}: {response['statusCode']} {found}", file=sys.stderr)
                return 1
            print(f'   {mode:6} "{query}"')
            for hit in found["results"]:
                print(f"     {hit['score']:.3f}  {hit['source_key']}  {hit['text'][:60]!r}")
        close_clients()
        clients.reset()
    print(f"\n`make serve` serves /search over {store}; try:")
    print(
        "  curl -s localhost:8080/search -d "
        '\'{"query": "descaling", "mode": "hybrid", "top_k": 3}\''
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handler.demo", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "env"):
        sub = commands.add_parser(name)
        sub.add_argument("--store", type=Path, default=DEFAULT_STORE)
    args = parser.parse_args(argv)
    if args.command == "env":
        for k, v in store_env(args.store).items():
            print(f"export {k}={v}")
        return 0
    return run(args.store)


if __name__ == "__main__":
    raise SystemExit(main())
