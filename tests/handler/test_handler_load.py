"""A bounded burst against `make serve`'s server in its own process, from a second process:
concurrent clients, nothing dropped, every answer right."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from _handler_helpers import REPO

CLIENTS, REQUESTS, CAP_S = 4, 25, 60

# The second process: CLIENTS threads, REQUESTS each, all before CAP_S; prints what it got.
CLIENT = r"""
import json, sys, threading, time, urllib.request, urllib.error
url, clients, requests, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + cap
results, lock = [], threading.Lock()
def client(c):
    for r in range(requests):
        if time.monotonic() > deadline:
            return
        texts = [f"client {c} request {r}", f"tea number {r * clients + c}"]
        body = json.dumps({"inputs": texts}).encode()
        request = urllib.request.Request(url + "/embed", body, {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            status, answer = e.code, None
        except Exception as e:
            status, answer = repr(e), None
        with lock:
            results.append({"texts": texts, "status": status, "vectors": answer})
threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
started = time.monotonic()
for t in threads: t.start()
for t in threads: t.join(timeout=cap + 5)
print(json.dumps({"seconds": time.monotonic() - started, "results": results}))
"""


def test_a_burst_of_concurrent_requests(models_dir, dense_model, tmp_path):
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KETTLE_MODELS_DIR": str(models_dir),
        "KETTLE_LOCAL_QUIET": "1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "handler.local", "serve", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"http://127\.0\.0\.1:\d+", log.read_text())
            url = found.group(0) if found else time.sleep(0.1)
        assert url, f"the server did not start: {log.read_text()[-2000:]}"
        burst = subprocess.run(
            [sys.executable, "-c", CLIENT, url, str(CLIENTS), str(REQUESTS), str(CAP_S)],
            capture_output=True,
            text=True,
            timeout=CAP_S + 30,
        )
        assert burst.returncode == 0, burst.stderr[-2000:]
        report = json.loads(burst.stdout)
    finally:
        server.terminate()
        server.wait(timeout=30)
    results = report["results"]
    assert len(results) == CLIENTS * REQUESTS, f"{len(results)} answers in {report['seconds']:.1f}s"
    assert [r["status"] for r in results] == [200] * len(results)
    # Each answer is what kettle gives for that request's texts. (Compare per request: the int8
    # model's dynamic activation quantization makes a vector depend a little on its batch.)
    for r in results:
        want = np.stack(list(dense_model.embed(r["texts"])))
        np.testing.assert_allclose(r["vectors"], want, atol=1e-6)
