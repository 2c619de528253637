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


def test_import_loads_the_dense_model_and_only_snapstart_init_registers_the_hook():
    for init_type in ("on-demand", "snap-start"):
        after = _after_import(init_type)
        [loaded] = after["loaded"]  # init ends with the model loaded, once
        assert loaded["name"] == DENSE and loaded["kind"] == "dense" and loaded["loads"] == 1
        if init_type == "on-demand":
            assert after["hooks"] is None  # not even snapshot_restore_py imported
        else:
            assert after["hooks"] == ["reseed_after_restore"]


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


def test_a_session_that_fails_in_the_background_is_built_again_by_get(monkeypatch):
    """ModelCache.start builds the session in a thread; if that fails, get() loads the model
    itself (raising what it raises), and the model counts one load."""
    from handler.models import ModelCache
    from handler.settings import Settings
    from kettle import TextEmbedding

    real_load, calls = TextEmbedding.load, []

    def flaky_load(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the first session build fails")
        real_load(self)

    monkeypatch.setattr(TextEmbedding, "load", flaky_load)
    cache, settings = ModelCache(), Settings.from_env()
    cache.start("dense", settings)
    cache.wait()
    assert cache.loaded() == []  # the background half failed: nothing cached
    model = cache.get("dense", settings)
    assert len(calls) == 2 and next(iter(model.embed(["tea"]))).shape == (384,)
    assert cache.loads[("dense", DENSE)] == 1
    cache.start("dense", settings)  # loaded already: nothing to start
    assert len(calls) == 2
