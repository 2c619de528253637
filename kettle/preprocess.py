"""Image preprocessing as a model's ``preprocessor_config.json`` describes it, with Pillow.

The steps and their order follow Hugging Face's CLIPImageProcessor / ViTImageProcessor (and
FastEmbed): convert to RGB -> resize -> centre crop -> to an array -> rescale -> normalise ->
channels first. Keys read:

* ``do_resize`` + ``size``: ``{"shortest_edge": n}`` (the short side becomes n, the long side
  ``int(n * long / short)``), ``{"height": h, "width": w}``, or a plain int (square);
  ``resample`` is a PIL resampling number (default 3, bicubic).
* ``do_center_crop`` + ``crop_size``: ``{"height", "width"}`` or an int; an image smaller than the
  crop is padded with zeros (before rescaling), centred the way the crop is.
* ``do_rescale`` + ``rescale_factor`` (default 1/255), ``do_normalize`` + ``image_mean`` /
  ``image_std`` (a number or one per channel).
* ``do_convert_rgb``: images are always made RGB (``Image.convert("RGB")``, alpha dropped), since
  the models take three channels.

Pillow is imported lazily: only image models need it (``pip install kettle[image]``).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kettle.errors import ImageInputError, ImageTypeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

PREPROCESSOR_CONFIG = "preprocessor_config.json"
DEFAULT_RESAMPLE = 3  # PIL.Image.Resampling.BICUBIC, CLIP's
SUPPORTED_PROCESSORS = {"CLIPImageProcessor", "ViTImageProcessor", "CLIPFeatureExtractor"}

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image


def require_pillow():
    """The PIL.Image module, or an ImportError that says how to get it."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised only without Pillow
        raise ImportError(
            "image models need Pillow: pip install 'kettle[image]' (or pip install pillow)"
        ) from exc
    return Image


def _hw(value: Any, key: str) -> tuple[int, int]:
    """(height, width) from ``{"height": h, "width": w}`` or an int (a square)."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    raise ValueError(f"{PREPROCESSOR_CONFIG}: {key} must be an int or {{height, width}}: {value!r}")


@dataclass(frozen=True)
class ImagePreprocessor:
    """The steps one model's images go through; ``__call__`` makes an NCHW float32 batch."""

    resize_shortest_edge: int | None = None
    resize_hw: tuple[int, int] | None = None
    resample: int = DEFAULT_RESAMPLE
    crop_hw: tuple[int, int] | None = None
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_config(cls, config: dict) -> ImagePreprocessor:
        """Read the keys of a CLIPImageProcessor / ViTImageProcessor config."""
        kind = config.get("image_processor_type") or config.get("feature_extractor_type")
        if kind is not None and kind not in SUPPORTED_PROCESSORS:
            raise ValueError(
                f"{PREPROCESSOR_CONFIG}: image_processor_type {kind!r} is not supported; "
                f"kettle reads {', '.join(sorted(SUPPORTED_PROCESSORS))}"
            )
        shortest = hw = None
        if config.get("do_resize", True) and "size" in config:
            size = config["size"]
            if isinstance(size, dict) and "shortest_edge" in size:
                shortest = int(size["shortest_edge"])
            else:
                hw = _hw(size, "size")
        crop = None
        if config.get("do_center_crop", False):
            if "crop_size" not in config:
                raise ValueError(f"{PREPROCESSOR_CONFIG}: do_center_crop without crop_size")
            crop = _hw(config["crop_size"], "crop_size")
        rescale = None
        if config.get("do_rescale", True):
            rescale = float(config.get("rescale_factor", 1 / 255))
        mean = std = None
        if config.get("do_normalize", False):
            try:
                mean, std = config["image_mean"], config["image_std"]
            except KeyError as exc:
                raise ValueError(f"{PREPROCESSOR_CONFIG}: do_normalize without {exc}") from None
            mean = tuple(float(m) for m in (mean if isinstance(mean, list) else [mean] * 3))
            std = tuple(float(s) for s in (std if isinstance(std, list) else [std] * 3))
            if len(mean) != 3 or len(std) != 3:
                raise ValueError(f"{PREPROCESSOR_CONFIG}: image_mean/image_std need 3 channels")
        return cls(
            resize_shortest_edge=shortest,
            resize_hw=hw,
            resample=int(config.get("resample", DEFAULT_RESAMPLE)),
            crop_hw=crop,
            rescale_factor=rescale,
            mean=mean,
            std=std,
        )

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> ImagePreprocessor:
        path = Path(directory) / PREPROCESSOR_CONFIG
        try:
            return cls.from_config(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: missing; an image model needs it") from None

    def resized(self, image: PILImage.Image) -> PILImage.Image:
        """Resize as configured (Pillow's resampling filters, as the HF processors use)."""
        if self.resize_shortest_edge is not None:
            width, height = image.size
            short, long = min(width, height), max(width, height)
            new_long = int(self.resize_shortest_edge * long / short)
            size = (
                (self.resize_shortest_edge, new_long)
                if width <= height
                else (new_long, self.resize_shortest_edge)
            )
            return image.resize(size, self.resample)
        if self.resize_hw is not None:
            height, width = self.resize_hw
            return image.resize((width, height), self.resample)
        return image

    def cropped(self, image: PILImage.Image) -> PILImage.Image:
        """The centre ``crop_hw`` window; Pillow fills what lies outside the image with zeros."""
        if self.crop_hw is None:
            return image
        height, width = self.crop_hw
        top = (image.height - height) // 2
        left = (image.width - width) // 2
        if (top, left, height, width) == (0, 0, image.height, image.width):
            return image
        return image.crop((left, top, left + width, top + height))

    def pixels(self, image: PILImage.Image) -> np.ndarray:
        """One RGB image -> float32 [3, H, W]."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = self.cropped(self.resized(image))
        array = np.asarray(image)
        if self.rescale_factor is not None:
            array = (array * self.rescale_factor).astype(np.float32)
        else:
            array = array.astype(np.float32)
        if self.mean is not None and self.std is not None:
            array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)

    def __call__(self, images: Sequence[PILImage.Image], offset: int = 0) -> np.ndarray:
        """A batch of PIL images -> float32 [N, 3, H, W]; all must come out the same size
        (errors name ``images[offset + i]``)."""
        arrays = [self.pixels(image) for image in images]
        for i, array in enumerate(arrays):
            if array.shape != arrays[0].shape:
                raise ImageInputError(
                    f"preprocesses to {array.shape[1:]}, a different size from "
                    f"images[{offset}]'s {arrays[0].shape[1:]}; batching needs a config with a "
                    "fixed output size (size {height, width} or a crop_size)",
                    index=offset + i,
                )
        return np.stack(arrays)


def open_image(item: ImageInput, index: int) -> PILImage.Image:
    """A loaded PIL image from a path, bytes or a PIL image; ImageInputError names
    ``images[index]`` and says why in plain words (Pillow's messages can hold object reprs)."""
    Image = require_pillow()
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, bytes | bytearray | memoryview):
        source: Any = io.BytesIO(bytes(item))
        what = f"{len(item)} bytes"
    elif isinstance(item, str | os.PathLike):
        source = what = os.fspath(item)
        if not os.path.isfile(source):
            raise ImageInputError(f"no such file {source!r}", index=index)
    else:
        raise ImageTypeError(
            f"is {type(item).__name__}; give a file path, bytes or a PIL image", index=index
        )
    try:
        with Image.open(source) as image:
            image.load()
            return image
    except Image.UnidentifiedImageError:
        reason = "not in an image format Pillow reads"
    except Image.DecompressionBombError:
        reason = f"more than {Image.MAX_IMAGE_PIXELS} pixels (Pillow's decompression bomb limit)"
    except Exception as exc:  # truncated or corrupt data: Pillow raises many types
        reason = _plain(str(exc)) or type(exc).__name__
    raise ImageInputError(f"cannot read {what} as an image ({reason})", index=index) from None


_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _plain(message: str) -> str:
    """A library's message without object reprs (``<_io.BytesIO object at 0x...>``)."""
    return " ".join(_REPR.sub("the data", message).split())
