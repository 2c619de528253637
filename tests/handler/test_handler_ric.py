"""The real AWS Lambda Runtime Interface Client (awslambdaric) runs dispatch_handler against a
small Lambda Runtime API on 127.0.0.1: one process imports the handler, loads the model during
init (before the first invocation) and reuses it warm for every invocation."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from _handler_helpers import DENSE, REPO, api_event

PREFIX = "/2018-06-01/runtime"
LIMIT_S = 90


class RuntimeAPI(ThreadingHTTPServer):
    """What Lambda's Runtime API does for one execution environment: hand out queued events on
    /invocation/next (long poll) and collect /response, /error and /init/error."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.responses: dict[str, Any] = {}
        self.errors: dict[str, Any] = {}
        self.answered = threading.Condition()
        self.stopping = threading.Event()

    def invoke(self, event: dict) -> str:
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        return request_id

    def wait_for(self, request_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.answered:
            while not all(r in self.responses or r in self.errors for r in request_ids):
                left = deadline - time.monotonic()
                if left <= 0 or "init" in self.errors or "restore" in self.errors:
                    return
                self.answered.wait(left)

    def record(self, store: dict, key: str, body: bytes) -> None:
        with self.answered:
            store[key] = json.loads(body) if body else None
            self.answered.notify_all()


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps one connection open
    server: RuntimeAPI

    def do_GET(self) -> None:
        if self.path == f"{PREFIX}/restore/next":  # SnapStart: "the snapshot is restored now"
            return self._reply(200, {})
        if self.path != f"{PREFIX}/invocation/next":
            return self._reply(404, {"errorMessage": f"no route {self.path}"})
        while not self.server.stopping.is_set():
            try:
                request_id, event = self.server.events.get(timeout=0.2)
            except queue.Empty:
                continue
            deadline_ms = int((time.time() + 30) * 1000)
            return self._reply(
                200,
                event,
                {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": (
                        "arn:aws:lambda:us-east-1:123456789012:function:kettle"
                    ),
                    "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0",
                },
            )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path[len(PREFIX) :].strip("/").split("/")
        if parts == ["init", "error"]:
            self.server.record(self.server.errors, "init", body)
        elif parts == ["restore", "error"]:
            self.server.record(self.server.errors, "restore", body)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
            self.server.record(self.server.responses, parts[1], body)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
            self.server.record(self.server.errors, parts[1], body)
        else:
            return self._reply(404, {"errorMessage": f"no route {self.path}"})
        self._reply(202, {"status": "OK"})

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def runtime_api():
    api = RuntimeAPI()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield api
    api.stopping.set()
    api.shutdown()
    api.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("init_type", ["on-demand", "snap-start"])
def test_the_runtime_interface_client_runs_the_handler_warm(
    runtime_api, models_dir, dense_model, tmp_path, init_type
):
    host, port = runtime_api.server_address[:2]
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}",
        "PYTHONPATH": str(REPO),
        "LAMBDA_TASK_ROOT": str(REPO),
        "AWS_LAMBDA_FUNCTION_NAME": "kettle",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        "KETTLE_MODELS_DIR": str(models_dir),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    log = tmp_path / "ric.log"
    texts = [["The kettle is boiling."], ["Tea is ready.", "Milk?"]]
    with open(log, "w") as out:
        ric = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "handler.app.dispatch_handler"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ids = [runtime_api.invoke(api_event("POST", "/embed", {"inputs": t})) for t in texts]
        ids.append(runtime_api.invoke(api_event("GET", "/health")))
        runtime_api.wait_for(ids, LIMIT_S)
        alive = ric.poll() is None
    finally:
        ric.terminate()
        ric.wait(timeout=30)
    output = log.read_text()
    assert "init" not in runtime_api.errors, runtime_api.errors
    assert not runtime_api.errors, runtime_api.errors
    assert all(i in runtime_api.responses for i in ids), output[-3000:]
    assert alive, "the runtime client exited between invocations"

    for request_id, batch in zip(ids, texts, strict=False):
        response = runtime_api.responses[request_id]
        assert response["statusCode"] == 200, response
        want = np.stack(list(dense_model.embed(batch)))
        np.testing.assert_allclose(json.loads(response["body"]), want, atol=1e-6)

    health = json.loads(runtime_api.responses[ids[-1]]["body"])
    [loaded] = health["loaded"]
    assert loaded["name"] == DENSE and loaded["loads"] == 1  # loaded once, reused warm

    lines = [json.loads(x) for x in output.splitlines() if x.startswith('{"level"')]
    loads = [x for x in lines if x["message"] == "model loaded"]
    assert len(loads) == 1, output[-3000:]
    reseeded = [x for x in lines if "re-seeded" in x["message"]]
    # Loaded during init (handler.preload), outside any invocation; under SnapStart before the
    # snapshot, and the restore hook ran before any invocation.
    assert "function_request_id" not in loads[0]
    if init_type == "on-demand":
        assert not reseeded
    else:
        assert len(reseeded) == 1 and "function_request_id" not in reseeded[0]
        assert lines.index(loads[0]) < lines.index(reseeded[0])
    later = [x for x in lines if x.get("function_request_id") in ids[1:]]
    assert later and all(x["cold_start"] is False for x in later)
