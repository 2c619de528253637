"""Fixtures for the infrastructure tests (helpers live in _infra_sam.py)."""

from __future__ import annotations

from typing import Any

import pytest
from _infra_sam import DEPLOYMENTS, REGION, load_template, translate


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def translated_cache(sam_template):
    cache: dict[str, dict[str, Any]] = {}

    def get(deployment: str) -> dict[str, Any]:
        if deployment not in cache:
            cache[deployment] = translate(sam_template, DEPLOYMENTS[deployment])
        return cache[deployment]

    return get


@pytest.fixture(autouse=True)
def _aws_region(monkeypatch):
    # samtranslator derives the partition from the default region; no credentials are used.
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
