"""ImageEmbedding on the tiny encoder baked through models_bake, against a numpy forward pass."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from _image_model import CLIP_LIKE, DIM, make_test_images, numpy_forward, write_model_dir
from PIL import Image

from kettle.errors import ImageInputError
from kettle.image import ImageEmbedding
from kettle.preprocess import ImagePreprocessor
from models_bake.bake import BakeError


def expected(images, config=CLIP_LIKE) -> np.ndarray:
    """The preprocessed pixels (checked by hand in test_image_preprocess) through numpy."""
    pixels = ImagePreprocessor.from_config(config)(images)
    raw = numpy_forward(pixels)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def images():
    return list(make_test_images().values())


def test_bake_writes_an_image_model(tiny_image_model):
    path, manifest = tiny_image_model.path, tiny_image_model.manifest
    assert manifest.kind == "image" and manifest.dim == DIM
    assert manifest.onnx["output"] == "image_embeds"
    assert json.loads((path / "preprocessor_config.json").read_text()) == CLIP_LIKE
    assert not (path / "tokenizer.json").exists()
    assert manifest.quantization is None


def test_vectors_match_numpy_forward(tiny_image_model, images):
    model = ImageEmbedding("test/tiny-image", models_dir=tiny_image_model.path.parents[1])
    got = np.stack(list(model.embed(images, batch_size=3)))
    assert got.shape == (len(images), DIM) and got.dtype == np.float32
    assert model.embedding_size == DIM
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, expected(images), atol=1e-5)


def test_paths_bytes_pil_and_generators_agree(tiny_image_model, images, tmp_path):
    model = ImageEmbedding("test/tiny-image", models_dir=tiny_image_model.path.parents[1])
    paths, blobs = [], []
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        blobs.append(buffer.getvalue())
    want = expected(images)
    for inputs in (paths, [str(p) for p in paths], blobs, (im for im in images)):
        got = np.stack(list(model.embed(inputs, batch_size=2)))
        np.testing.assert_allclose(got, want, atol=1e-5)
    (single,) = model.embed(str(paths[3]))  # one item, not an iterable of characters
    np.testing.assert_allclose(single, want[3], atol=1e-5)


def test_embed_is_lazy_and_names_the_bad_item(tiny_image_model, images):
    model = ImageEmbedding("test/tiny-image", models_dir=tiny_image_model.path.parents[1])
    stream = model.embed([images[0], images[1], images[2], b"garbage", images[4]], batch_size=2)
    first = next(stream)  # the first batch is done before the bad item is read
    np.testing.assert_allclose(first, expected(images[:1])[0], atol=1e-5)
    next(stream)
    with pytest.raises(ValueError, match=r"images\[3\]: cannot read 7 bytes"):
        list(stream)
    with pytest.raises(TypeError, match=r"images\[1\] is NoneType"):
        list(model.embed([images[0], None]))
    with pytest.raises(ValueError, match="batch_size"):
        list(model.embed(images, batch_size=0))


def test_wrong_kind_is_refused(tiny_image_model):
    from kettle.dense import TextEmbedding

    with pytest.raises(ValueError, match="image model, not dense"):
        TextEmbedding("test/tiny-image", models_dir=tiny_image_model.path.parents[1])


@pytest.mark.bakes
def test_int8_bake_is_gated_on_synthetic_images(tmp_path, bake_local, images):
    source = write_model_dir(tmp_path / "src", CLIP_LIKE)
    result = bake_local("test/tiny-image-int8", source, quantize="int8", min_cosine=0.9)
    fidelity = result.manifest.fidelity
    assert fidelity["eval_set"].startswith("synthetic_images:")
    assert 0.9 <= fidelity["mean_cosine"] <= 1.0 and fidelity["n_texts"] == 32
    assert result.manifest.quantization["weight_type"] == "QInt8"
    model = ImageEmbedding("test/tiny-image-int8", models_dir=result.path.parents[1])
    got = np.stack(list(model.embed(images)))
    cosines = (got * expected(images)).sum(axis=1)
    assert cosines.min() > 0.9


def test_bake_without_preprocessor_config_fails(tmp_path, bake_local):
    source = write_model_dir(tmp_path / "src", CLIP_LIKE)
    (source / "preprocessor_config.json").unlink()
    with pytest.raises(BakeError, match="preprocessor_config.json"):
        bake_local("test/tiny-image-noconfig", source)


def test_image_model_needs_a_fixed_size_config(tmp_path, bake_local):
    config = {k: v for k, v in CLIP_LIKE.items() if k != "do_center_crop"}  # no crop
    source = write_model_dir(tmp_path / "src", config)
    result = bake_local("test/tiny-image-nocrop", source)
    model = ImageEmbedding("test/tiny-image-nocrop", models_dir=result.path.parents[1])
    square, wide = Image.new("RGB", (40, 40)), Image.new("RGB", (80, 40))
    assert len(list(model.embed([square, wide], batch_size=1))) == 2  # alone: fine
    with pytest.raises(ValueError, match=r"images\[1\] preprocesses to"):
        list(model.embed([square, wide], batch_size=2))


def test_parallel_workers_give_the_same_vectors_and_indices(tiny_image_model, images):
    model = ImageEmbedding("test/tiny-image", models_dir=tiny_image_model.path.parents[1])
    many = images * 3
    single = np.stack(list(model.embed(many, batch_size=2)))
    both = np.stack(list(model.embed(iter(many), batch_size=2, parallel=2)))
    np.testing.assert_array_equal(both, single)
    bad = len(images)
    with pytest.raises(ImageInputError, match=rf"images\[{bad}\]: cannot read 7 bytes") as caught:
        list(model.embed([*images, b"garbage", *images], batch_size=2, parallel=2))
    assert caught.value.index == bad and " at 0x" not in str(caught.value)
