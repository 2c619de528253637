"""How fast S3 ingestion syncs one text object, and so the largest object that syncs within the
ingest function's timeout (what MAX_OBJECT_BYTES's default is set from).

One .txt object of ``--bytes`` bytes of English prose (bench/corpus.py's standard-library
sentences) goes through the handler's whole path, in moto: the S3 event, GetObject, chunking
(CHUNK_TOKENS 256, overlap 32, as template.yaml), the dense model, the files sink and the ledger.
Run it pinned to the cores the Lambda function would have:

    KETTLE_THREADS=2 taskset -c 0,1 .venv/bin/python bench/ingest_rate.py --bytes 1000000

It prints bytes per second (wall clock and process CPU) and ``timeout x rate x margin``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

TIMEOUT_S = 300  # template.yaml's ingest function Timeout
MARGIN = 0.8  # of the timeout spent syncing: the rest for a cold start and slower S3


def text_of(size: int) -> bytes:
    import corpus

    pool = corpus.sentences()
    out, total, i = [], 0, 0
    while total < size:
        sentence = pool[i % len(pool)] + " "
        out.append(sentence)
        total += len(sentence.encode("utf-8"))
        i += 1
    return "".join(out).encode("utf-8")[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=1_000_000)
    parser.add_argument("--models", default=os.environ.get("KETTLE_MODELS_DIR", "models"))
    args = parser.parse_args()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "kettle",
        "KETTLE_MODELS_DIR": args.models,
        "OUTPUT_BUCKET": "bench-out",
        "INPUT_PREFIX": "incoming/",
        "CHUNK_TOKENS": "256",
        "CHUNK_OVERLAP": "32",
        "MAX_OBJECT_BYTES": str(10 * args.bytes),
        "DLQ_URL": "",
    }
    os.environ.update({k: v for k, v in env.items() if k not in os.environ or k.startswith("AWS")})
    import boto3
    from moto import mock_aws

    from handler.app import s3_handler
    from handler.local import LocalContext

    body = text_of(args.bytes)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench-in")
        s3.create_bucket(Bucket="bench-out")
        warm = s3.put_object(Bucket="bench-in", Key="incoming/warm.txt", Body=b"Warm the model.")
        key = "incoming/big.txt"
        put = s3.put_object(Bucket="bench-in", Key=key, Body=body)

        def event(k: str, etag: str, size: int) -> dict:
            obj = {"key": k, "eTag": etag.strip('"'), "size": size, "sequencer": "01"}
            return {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "bench-in"}, "object": obj},
                    }
                ]
            }

        s3_handler(event("incoming/warm.txt", warm["ETag"], 15), LocalContext())  # model load
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        result = s3_handler(event(key, put["ETag"], len(body)), LocalContext())
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    [outcome] = result["results"]
    assert outcome["status"] == "embedded", outcome
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    rate = len(body) / wall
    print(
        json.dumps(
            {
                "bytes": len(body),
                "chunks": outcome["count"],
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "bytes_per_s": round(rate),
                "threads": os.environ.get("KETTLE_THREADS", "all"),
                "cpus": sorted(os.sched_getaffinity(0)),
                "loadavg": os.getloadavg(),
                "largest_in_timeout": int(rate * TIMEOUT_S * MARGIN),
            }
        )
    )


if __name__ == "__main__":
    main()
