"""What a cold start of the API imports: not the X-Ray SDK (tracing off), not botocore or boto3,
not the ingestion modules, not pydantic (a valid body is checked without it: handler.validation)
nor Powertools' OpenAPI models; and with tracing on, the Tracer wraps
the entry points. Each check is a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _handler_helpers import REPO

NOT_ON_THE_COLD_PATH = [
    "aws_xray_sdk",
    "botocore.session",  # Powertools' user_agent imports the (light) botocore package itself
    "botocore.client",
    "boto3",
    "handler.ingest",
    "handler.batch",
    "handler.search",  # /search's backends and the sinks: imported by its route's first call
    "handler.sinks",
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.event_handler.middlewares.openapi_validation",
    "pydantic",
    "handler.schemas",  # the pydantic models: for invalid bodies and the OpenAPI document
    "aws_lambda_powertools.utilities.batch",
]

FIRST_EMBED = """
import json, sys
from handler.app import api_handler
from handler.local import LocalContext, http_api_event
event = http_api_event("POST", "/embed", {"content-type": "application/json"}, b'{"inputs": "tea"}')
status = api_handler(event, LocalContext())["statusCode"]
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def _fresh(code: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO), "POWERTOOLS_LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_and_first_embed_import_only_the_api_path():
    env = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}
    found = _fresh(FIRST_EMBED, **env)
    assert found["status"] == 200
    loaded = [m for m in NOT_ON_THE_COLD_PATH if m in found["modules"]]
    assert loaded == [], loaded


UNBAKED_FIRST_EMBED = """
import json
from handler.app import api_handler
from handler.local import LocalContext, http_api_event
from handler.models import MODELS
loaded = MODELS.loaded()
event = http_api_event("POST", "/embed", {"content-type": "application/json"}, b'{"inputs": "tea"}')
result = api_handler(event, LocalContext())
print(json.dumps({"loaded": loaded, "status": result["statusCode"],
                  "error": json.loads(result["body"])}))
"""


def test_a_model_that_fails_to_load_during_init_is_answered_by_the_first_request():
    """The init-time load (handler.preload) keeps its error: the import succeeds and the first
    request loads again and answers the error, as a lazy load did."""
    found = _fresh(UNBAKED_FIRST_EMBED, KETTLE_MODEL="kettle-tests/not-baked-anywhere")
    assert found["loaded"] == []
    assert found["status"] == 503, found
    # /embed is TEI's route: TEI's shape, Unhealthy for a model that cannot be served
    assert found["error"]["code"] == "model_not_baked"
    assert found["error"]["error_type"] == "Unhealthy"
    assert "kettle-tests/not-baked-anywhere" in found["error"]["error"]


def test_with_tracing_on_the_entry_points_are_traced():
    code = (
        "import json, sys, handler.app as a; "
        "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, "
        "'wrapped': hasattr(a.api_handler, '__wrapped__')}))"
    )
    on = _fresh(code, POWERTOOLS_TRACE_DISABLED="false", LAMBDA_TASK_ROOT="/var/task")
    assert on == {"xray": True, "wrapped": True}
    off = _fresh(code, POWERTOOLS_TRACE_DISABLED="true")
    assert off["xray"] is False


# An invalid body: the first request that needs pydantic (a valid one never imports it).
PLUGIN_SCAN = """
import json, os, sys
from handler.app import api_handler
from handler.local import LocalContext, http_api_event
event = http_api_event("POST", "/embed", {"content-type": "application/json"}, b'{"inputs": ""}')
status = api_handler(event, LocalContext())["statusCode"]
from pydantic.plugin import _loader
print(json.dumps({"status": status, "scanned": _loader._plugins is not None,
                  "setting": os.environ.get("PYDANTIC_DISABLE_PLUGINS")}))
"""


def test_pydantic_plugins_are_not_scanned_unless_the_operator_asks(monkeypatch):
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)  # set here by an earlier import
    found = _fresh(PLUGIN_SCAN, POWERTOOLS_TRACE_DISABLED="true")
    assert found == {"status": 422, "scanned": False, "setting": "__all__"}
    # An operator's own setting is kept: "" lets pydantic look for plugins again.
    found = _fresh(PLUGIN_SCAN, POWERTOOLS_TRACE_DISABLED="true", PYDANTIC_DISABLE_PLUGINS="")
    assert found == {"status": 422, "scanned": True, "setting": ""}


THREADS = """
import json, os
import handler  # what the runtime imports first (handler.app's package), then numpy
import numpy
print(json.dumps({"threads": len(os.listdir("/proc/self/task")),
                  "setting": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def test_numpy_starts_no_blas_threads_unless_the_operator_asks(monkeypatch):
    """numpy's OpenBLAS starts a spinning worker per CPU at import: the handler asks for one
    thread (no worker) before numpy is imported; an operator's own setting is kept."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    found = _fresh(THREADS, POWERTOOLS_TRACE_DISABLED="true")
    assert found == {"threads": 1, "setting": "1"}
    found = _fresh(THREADS, POWERTOOLS_TRACE_DISABLED="true", OPENBLAS_NUM_THREADS="2")
    assert found["setting"] == "2"
    if len(os.sched_getaffinity(0)) >= 2:
        assert found["threads"] == 2  # the operator's second BLAS thread
