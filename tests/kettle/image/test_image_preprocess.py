"""Preprocessing against pixels computed by hand on tiny synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kettle.errors import ImageInputError
from kettle.preprocess import ImagePreprocessor, open_image


def grid(height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] with pixel (y, x, c) = 10*y + x + 100*c, so every value says where it is."""
    y, x, c = np.mgrid[0:height, 0:width, 0:3]
    return (10 * y + x + 100 * c).astype(np.uint8)


def test_crop_rescale_normalise_by_hand():
    image = Image.fromarray(grid(5, 7), "RGB")
    mean, std = [0.5, 0.25, 0.125], [0.5, 0.25, 0.5]
    pre = ImagePreprocessor.from_config(
        {
            "do_resize": False,
            "do_center_crop": True,
            "crop_size": {"height": 2, "width": 2},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": mean,
            "image_std": std,
        }
    )
    got = pre([image])
    assert got.shape == (1, 3, 2, 2) and got.dtype == np.float32
    # Centre 2x2 of a 5x7 image, offsets rounded down: rows 1..2, columns 2..3.
    for c in range(3):
        for i, y in enumerate((1, 2)):
            for j, x in enumerate((2, 3)):
                want = ((10 * y + x + 100 * c) / 255 - mean[c]) / std[c]
                assert got[0, c, i, j] == pytest.approx(want, abs=1e-6), (c, y, x)


def test_crop_larger_than_image_pads_with_zeros():
    image = Image.fromarray(grid(2, 3), "RGB")
    pre = ImagePreprocessor.from_config(
        {"do_resize": False, "do_center_crop": True, "crop_size": 4, "do_rescale": False}
    )
    (got,) = pre([image])
    assert got.shape == (3, 4, 4)
    # offset (2-4)//2 = -1 rows and (3-4)//2 = -1 columns: pixel (y, x) lands at (y+1, x+1)
    for c in range(3):
        for y in range(2):
            for x in range(3):
                assert got[c, y + 1, x + 1] == 10 * y + x + 100 * c
    assert not got[:, 0, :].any() and not got[:, 3, :].any() and not got[:, :, 0].any()


def test_padding_is_normalised_like_black_pixels():
    image = Image.fromarray(grid(2, 2), "RGB")
    pre = ImagePreprocessor.from_config(
        {
            "do_resize": False,
            "do_center_crop": True,
            "crop_size": 4,
            "do_normalize": True,
            "image_mean": 0.5,
            "image_std": 0.25,
        }
    )
    (got,) = pre([image])
    assert got[0, 0, 0] == pytest.approx((0 - 0.5) / 0.25)


def test_resize_height_width_nearest_doubles_pixels():
    src = grid(2, 3)
    pre = ImagePreprocessor.from_config(
        {"size": {"height": 4, "width": 6}, "resample": 0, "do_rescale": False}
    )
    (got,) = pre([Image.fromarray(src, "RGB")])
    want = np.repeat(np.repeat(src, 2, axis=0), 2, axis=1).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("height", "width", "shortest", "out_hw"),
    [(6, 3, 6, (12, 6)), (2, 5, 4, (4, 10)), (3, 3, 6, (6, 6))],
)
def test_resize_shortest_edge_keeps_aspect(height, width, shortest, out_hw):
    src = grid(height, width)
    pre = ImagePreprocessor.from_config(
        {"size": {"shortest_edge": shortest}, "resample": 0, "do_rescale": False}
    )
    (got,) = pre([Image.fromarray(src, "RGB")])
    assert got.shape == (3, *out_hw)
    factor = shortest // min(height, width)
    want = np.repeat(np.repeat(src, factor, axis=0), factor, axis=1).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, want)


def test_modes_become_rgb():
    pre = ImagePreprocessor.from_config({"do_resize": False, "do_rescale": False})
    gray = Image.new("L", (3, 2), 77)
    rgba = Image.new("RGBA", (3, 2), (10, 20, 30, 0))
    palette = Image.new("RGB", (3, 2), (200, 100, 50)).quantize(colors=4)
    got = pre([gray, rgba, palette])
    assert got.shape == (3, 3, 2, 3)
    assert (got[0] == 77).all()
    np.testing.assert_array_equal(got[1, :, 0, 0], [10, 20, 30])  # alpha dropped, as CLIP does
    np.testing.assert_array_equal(got[2, :, 0, 0], [200, 100, 50])


def test_different_output_sizes_are_refused():
    pre = ImagePreprocessor.from_config({"do_resize": False})
    with pytest.raises(ValueError, match="images\\[1\\].*different size"):
        pre([Image.new("RGB", (3, 3)), Image.new("RGB", (4, 3))])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"image_processor_type": "SiglipImageProcessor"}, "SiglipImageProcessor"),
        ({"do_normalize": True, "image_mean": [0.5] * 3}, "image_std"),
        ({"do_center_crop": True}, "crop_size"),
        ({"size": {"longest_edge": 3}}, "size"),
        ({"do_normalize": True, "image_mean": [0.5] * 2, "image_std": [1] * 2}, "3 channels"),
    ],
)
def test_bad_configs_say_which_key(config, message):
    with pytest.raises(ValueError, match=message):
        ImagePreprocessor.from_config(config)


def test_open_image_accepts_paths_bytes_and_pil(tmp_path):
    image = Image.fromarray(grid(2, 3), "RGB")
    path = tmp_path / "a.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    for item in (path, str(path), buffer.getvalue(), bytearray(buffer.getvalue()), image):
        np.testing.assert_array_equal(np.asarray(open_image(item, 0)), grid(2, 3))


def test_open_image_errors_name_the_index(tmp_path):
    with pytest.raises(ImageInputError, match=r"images\[2\].*nope\.png") as missing:
        open_image(tmp_path / "nope.png", 2)
    assert (missing.value.field, missing.value.index) == ("images", 2)
    with pytest.raises(ValueError, match=r"images\[1\]: cannot read 9 bytes") as garbage:
        open_image(b"not a png", 1)
    assert isinstance(garbage.value, ImageInputError) and garbage.value.index == 1
    assert " at 0x" not in str(garbage.value)  # Pillow's message names a BytesIO repr
    with pytest.raises(TypeError, match=r"images\[0\] is int"):
        open_image(3, 0)
    with pytest.raises(TypeError, match=r"images\[4\] is NoneType"):
        open_image(None, 4)
