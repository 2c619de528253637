"""Image tests: a tiny ONNX image encoder baked through models_bake from a local source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _image_model import CLIP_LIKE, FIXTURE, description, write_model_dir

from kettle.registry import register_model, unregister_model
from models_bake.bake import BakeResult, bake


@pytest.fixture(scope="session")
def bake_local(tmp_path_factory) -> Iterator[Callable[..., BakeResult]]:
    """bake_local(name, source_dir, quantize="none", min_cosine=..., **description) -> BakeResult;
    the description is registered for the session and baked into a temporary models dir."""
    names: list[str] = []
    cache = tmp_path_factory.mktemp("bake-cache")

    def run(name: str, source_dir: Path, quantize: str = "none", min_cosine: float = 0.99, **kw):
        register_model(description(name, source_dir, **kw))
        names.append(name)
        out = tmp_path_factory.mktemp("models")
        return bake(name, out=out, quantize=quantize, min_cosine=min_cosine, cache=cache)

    yield run
    for name in names:
        unregister_model(name)


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory, bake_local) -> BakeResult:
    """The tiny encoder with the CLIP-like config, baked at full precision."""
    source = write_model_dir(tmp_path_factory.mktemp("tiny-image"), CLIP_LIKE)
    return bake_local("test/tiny-image", source)


@pytest.fixture(scope="session")
def fastembed_record() -> dict:
    path = FIXTURE / "fastembed.json"
    assert path.is_file(), f"{path} is missing; make it with tools/make_image_fixture.py"
    return json.loads(path.read_text())
