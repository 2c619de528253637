"""Vectors and preprocessed pixels equal FastEmbed's ImageEmbedding on the same ONNX file, configs
and images (recorded by tools/make_image_fixture.py under fastembed==0.9.1, which cannot share
kettle's venv: it pins huggingface-hub<2)."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
from _image_model import CONFIGS, FIXTURE, pixel_fingerprint, weights
from onnx import numpy_helper

from kettle.image import ImageEmbedding
from kettle.preprocess import ImagePreprocessor, open_image


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_fixture_is_what_the_test_builders_make(fastembed_record, config_name):
    record = fastembed_record["configs"][config_name]
    directory = FIXTURE / config_name
    assert sha256(directory / "model.onnx") == record["model_sha256"]
    assert sha256(directory / "preprocessor_config.json") == record["config_sha256"]
    # The committed model holds the seeded builder's weights (so numpy_forward describes it too).
    model = onnx.load(str(directory / "model.onnx"))
    assert [n.op_type for n in model.graph.node] == [
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
        "MatMul",
    ]
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert stored.keys() == weights().keys()
    for name, array in weights().items():
        np.testing.assert_array_equal(stored[name], array)
    assert ImagePreprocessor.from_dir(directory) == ImagePreprocessor.from_config(
        CONFIGS[config_name]
    )


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_pixels_equal_fastembed(fastembed_record, config_name):
    record = fastembed_record["configs"][config_name]
    pre = ImagePreprocessor.from_dir(FIXTURE / config_name)
    for i, name in enumerate(fastembed_record["images"]):
        pixels = pre([open_image(FIXTURE / "images" / f"{name}.png", i)])[0]
        want = np.array(record["pixel_fingerprints"][name])
        np.testing.assert_allclose(pixel_fingerprint(pixels), want, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_vectors_equal_fastembed(fastembed_record, bake_local, config_name):
    record = fastembed_record["configs"][config_name]
    result = bake_local(f"test/fastembed-{config_name}", FIXTURE / config_name)
    model = ImageEmbedding(f"test/fastembed-{config_name}", models_dir=result.path.parents[1])
    names = fastembed_record["images"]
    paths = [FIXTURE / "images" / f"{name}.png" for name in names]
    got = np.stack(list(model.embed(paths, batch_size=3)))
    want = np.array([record["vectors"][name] for name in names])
    np.testing.assert_allclose(got, want, atol=1e-5)
