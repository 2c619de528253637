"""Images for the handler: which objects are images, and bytes -> a decoded PIL image with limits.

Shared by ``POST /embed_image`` and S3 ingestion. The handler only ever hands kettle decoded PIL
images or bytes, never a path, so nothing a caller sends is read from the function's disk.
Pillow is imported on first use (only image models need it).
"""

from __future__ import annotations

import io
import re
from typing import Any

_REPR = re.compile(r"<[^<>]*\bobject at 0x[0-9a-fA-F]+>")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can read."""


class ImageTooLargeError(ValueError):
    """The image decodes to more pixels than the handler allows (MAX_IMAGE_PIXELS)."""


def is_image_type(content_type: str | None) -> bool:
    """True for an ``image/*`` Content-Type (parameters ignored)."""
    return bool(content_type) and content_type.split(";")[0].strip().lower().startswith("image/")


def decode_image(raw: bytes, where: str, max_pixels: int) -> Any:
    """A loaded PIL image from ``raw``; the errors name ``where`` and say what is wrong."""
    from kettle.preprocess import require_pillow

    Image = require_pillow()
    if not raw:
        raise ImageDecodeError(f"{where} is empty (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{where} is {width}x{height} pixels; at most {max_pixels} pixels "
                    "(MAX_IMAGE_PIXELS)"
                )
            image.load()  # the first frame of an animation
            return image
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{where} has too many pixels to decode ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(
            f"{where} is not an image Pillow can read (not a format it recognises)"
        ) from None
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, EOFError, ...
        # Pillow's messages can carry the stream's repr ("<_io.BytesIO object at 0x...>").
        reason = _REPR.sub("the image", str(exc)) or type(exc).__name__
        raise ImageDecodeError(f"{where} is not an image Pillow can read ({reason})") from None


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "ImageTooLargeError",
    "decode_image",
    "is_image_type",
]
