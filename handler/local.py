"""Run the Lambda handler on this machine: `make serve` and `make invoke`.

    python -m handler.local serve [--port 8080]     HTTP on 127.0.0.1 -> HTTP API (payload 2.0)
                                                    event -> handler.app.api_handler -> HTTP
    python -m handler.local invoke EVENT.json       any event -> handler.app.dispatch_handler,
                                                    the result printed as JSON

The server accepts connections concurrently and hands the handler one request at a time, as one
Lambda execution environment does.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_PORT = 8080
FUNCTION_NAME = "kettle-local"


@dataclass
class LocalContext:
    """The parts of Lambda's context object the handler and Powertools read."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = field(
        default_factory=lambda: int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 2048)
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: float = 30.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def http_api_event(
    method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for one request, as API Gateway builds it."""
    url = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:  # API Gateway passes binary bodies base64-encoded
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


ALLOWED = "GET, POST, PUT, DELETE, PATCH, OPTIONS, HEAD"


def _json_error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Lambda-style result carrying the API's error shape."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


class LambdaHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose requests all go to one handler function, one at a time."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler_function: Any) -> None:
        super().__init__(address, _RequestHandler)
        self.handler_function = handler_function
        self.invoke_lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.invoke_lock:
            return self.handler_function(event, LocalContext())


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LambdaHTTPServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        event = http_api_event(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
        )
        try:
            result = self.server.invoke(event)
        except Exception as exc:  # the handler itself raised: Lambda would answer 502
            self.log_error("handler raised %s: %s", type(exc).__name__, exc)
            result = {
                "statusCode": 502,
                "headers": {"content-type": "application/json"},
                "body": json.dumps({"message": "Internal Server Error"}),
            }
        self._reply(result)

    def _reply(self, result: dict[str, Any]) -> None:
        status = int(result.get("statusCode", 200))
        payload = result.get("body") or ""
        data = (
            base64.b64decode(payload)
            if result.get("isBase64Encoded")
            else str(payload).encode("utf-8")
        )
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.send_response(status, phrase)
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = ", ".join(values)
        headers.pop("content-length", None)
        headers.setdefault("content-type", "application/json")
        for name, value in headers.items():
            self.send_header(name, str(value))
        for cookie in result.get("cookies") or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>; any method API Gateway does not route
        # (TRACE, CONNECT, PROPFIND, ...) gets a JSON 405 instead of the stdlib's HTML 501.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._reply(
            _json_error(
                405,
                f"method {self.command} is not allowed; use {ALLOWED}",
                "method_not_allowed",
                {"Allow": ALLOWED},
            )
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (a malformed request line, a header too long) as JSON, not HTML."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsed: answer with headers all the same
            self.request_version = "HTTP/1.0"
        known = code in HTTPStatus._value2member_map_
        text = message or (HTTPStatus(code).phrase if known else "error")
        self._reply(_json_error(code, text, "bad_request" if code < 500 else "server_error"))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        if os.environ.get("KETTLE_LOCAL_QUIET") != "1":
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> LambdaHTTPServer:
    """A server for handler.app.api_handler (port 0 picks a free port: see server_address)."""
    from handler.app import api_handler

    return LambdaHTTPServer((host, port), api_handler)


def invoke(path: str) -> Any:
    """Run the event in ``path`` through handler.app.dispatch_handler."""
    from handler.app import dispatch_handler

    with open(path, encoding="utf-8") as fh:
        event = json.load(fh)
    return dispatch_handler(event, LocalContext())


def needs_aws(event: Any) -> str | None:
    """What an S3, SQS or Step Functions event needs from AWS that this machine lacks (a line), or
    None: API events run offline; the others read and write S3 with boto3's credentials."""
    from handler.app import UnknownEventError, route

    try:
        kind = route(event)
    except UnknownEventError:
        return None  # dispatch_handler says what is wrong with it
    if kind == "api":
        return None
    import boto3

    session = boto3.Session()
    missing = []
    if session.get_credentials() is None:
        missing.append(
            "AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    if not session.region_name:
        missing.append("a region (AWS_REGION or AWS_DEFAULT_REGION)")
    if not missing:
        return None
    what = "an S3/SQS" if kind == "s3" else "a Step Functions batch"
    return (
        f"this is {what} event: the handler reads the objects from S3 and writes vectors to "
        f"OUTPUT_BUCKET, which needs {' and '.join(missing)}; none found. Set them (and the "
        "buckets the event names), or try an API event offline: "
        "make invoke EVENT=events/api_v2_embed.json"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handler.local", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="HTTP API on 127.0.0.1 -> api_handler")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    run = commands.add_parser("invoke", help="one event file -> dispatch_handler")
    run.add_argument("event", help="an event JSON file, e.g. events/api_v2_embed.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF lines between results
    if args.command == "invoke":
        try:
            with open(args.event, encoding="utf-8") as fh:
                event = json.load(fh)
        except (OSError, ValueError) as exc:
            print(f"kettle: cannot read the event {args.event}: {exc}", file=sys.stderr)
            return 2
        problem = needs_aws(event)
        if problem:
            print(f"kettle: {problem}", file=sys.stderr)
            return 1
        print(json.dumps(invoke(args.event), indent=2, ensure_ascii=False))
        return 0
    try:
        server = make_server(args.host, args.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"kettle: port {args.port} on {args.host} is in use; pick another: "
            f"make serve PORT={args.port + 1} (or --port {args.port + 1})",
            file=sys.stderr,
        )
        return 1
    host, port = server.server_address[:2]
    print(
        f"kettle: http://{host}:{port} (docs: http://{host}:{port}/docs); Ctrl-C stops", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
