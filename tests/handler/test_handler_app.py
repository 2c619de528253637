"""The entry points: routing by event shape, threads from memory, lazy loading, SnapStart."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from _handler_helpers import DENSE, EVENTS, REPO, ApiResult, lambda_context


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"version": "2.0", "requestContext": {"http": {"method": "GET"}}}, "api"),
        ({"httpMethod": "GET", "path": "/health"}, "api"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "s3"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "s3"),
        ({"Items": [], "BatchInput": {}}, "batch"),
    ],
)
def test_route_by_shape(event, kind):
    from handler.app import route

    assert route(event) == kind


@pytest.mark.parametrize(
    "event", [{}, {"Records": [{"eventSource": "aws:dynamodb"}]}, {"detail": {}}, ["x"]]
)
def test_unknown_events_are_refused_by_name(event):
    from handler.app import UnknownEventError, dispatch_handler

    with pytest.raises(UnknownEventError, match="unrecognized event"):
        dispatch_handler(event, lambda_context())


@pytest.mark.parametrize(
    ("memory", "configured", "cpus", "threads"),
    [
        (None, None, 4, 4),  # not on Lambda: every CPU
        (512, None, 2, 1),  # at least one
        (1769, None, 2, 1),
        (3008, None, 2, 2),  # 1.7 vCPU
        (10240, None, 6, 6),
        (10240, None, 2, 2),  # never more than the CPUs this process may use
        (3008, 3, 2, 3),  # $KETTLE_THREADS wins
    ],
)
def test_threads_follow_the_functions_memory(memory, configured, cpus, threads):
    from handler.models import threads_for
    from handler.settings import Settings

    settings = Settings.from_env()
    settings = type(settings)(**{**settings.__dict__, "memory_mb": memory, "threads": configured})
    assert threads_for(settings, cpus=cpus) == threads


def test_settings_errors_name_the_variable(monkeypatch):
    from handler.settings import Settings, SettingsError

    monkeypatch.setenv("MAX_TEXTS", "many")
    with pytest.raises(SettingsError, match=r"\$MAX_TEXTS"):
        Settings.from_env()
    monkeypatch.setenv("MAX_TEXTS", "10")
    monkeypatch.setenv("CHUNK_OVERLAP", "300")
    with pytest.raises(SettingsError, match=r"\$CHUNK_OVERLAP"):
        Settings.from_env()


def test_the_restore_hook_reseeds():
    from handler.app import reseed_after_restore

    def first_draws(reseed: bool) -> tuple[float, float]:
        random.seed(7)  # the state every copy restored from one snapshot starts with
        np.random.seed(7)
        if reseed:
            reseed_after_restore()
        return random.random(), float(np.random.random())

    assert first_draws(False) == first_draws(False)
    one, two = first_draws(True), first_draws(True)
    assert one[0] != two[0] and one[1] != two[1]


def _after_import(init_type: str) -> dict:
    """What a fresh process holds after importing handler.app (nothing else): its models and
    its registered restore hooks."""
    code = (
        "import json, sys, handler.app as a; "
        "hooks = [f.__qualname__ for f, _, _ in "
        "sys.modules['snapshot_restore_py'].get_after_restore()] "
        "if 'snapshot_restore_py' in sys.modules else None; "
        "print(json.dumps({'loaded': a.MODELS.loaded(), 'hooks': hooks}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO), "AWS_LAMBDA_INITIALIZATION_TYPE": init_type},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_loads_nothing_but_snapstart_init_loads_and_registers_the_hook():
    on_demand = _after_import("on-demand")
    assert on_demand == {"loaded": [], "hooks": None}  # not even snapshot_restore_py imported
    snapstart = _after_import("snap-start")
    [loaded] = snapstart["loaded"]
    assert loaded["name"] == DENSE and loaded["kind"] == "dense" and loaded["loads"] == 1
    assert snapstart["hooks"] == ["reseed_after_restore"]


def test_models_load_once_and_are_reused(call_api):
    from handler.models import MODELS

    for _ in range(3):
        assert call_api("POST", "/embed", {"inputs": "again"}).status == 200
    assert MODELS.loads[("dense", DENSE)] == 1


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("api_*.json")))
def test_api_sample_events(name, with_image_model, with_colbert):
    """Every sample API event answers 200 (with an image and a late-interaction model
    configured, for /embed_image and /embed_multi)."""
    from handler.app import dispatch_handler

    event = json.loads((EVENTS / name).read_text())
    result = ApiResult(dispatch_handler(event, lambda_context()))
    assert result.status == 200, result
    assert result.json()


def test_the_new_routes_have_sample_events():
    names = {p.name for p in EVENTS.glob("api_*.json")}
    assert {"api_v2_embed_image.json", "api_v2_embed_multi.json"} <= names
