"""Image embeddings: one normalised float32 vector per image, from a baked ONNX image encoder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import numpy as np

from kettle.manifest import Manifest
from kettle.pooling import normalize, pool
from kettle.preprocess import ImageInput, ImagePreprocessor, open_image, require_pillow
from kettle.registry import list_supported_models
from kettle.session import create_session
from kettle.store import BakedModel, find_model

DEFAULT_IMAGE_MODEL = "Qdrant/clip-ViT-B-32-vision"
DEFAULT_IMAGE_BATCH_SIZE = 16


class ImageEmbedding:
    """Dense image embeddings (CLIP vision towers, ViT, ResNet) from a baked model.

    >>> model = ImageEmbedding("Qdrant/clip-ViT-B-32-vision")
    >>> vectors = list(model.embed(["cat.jpg", open("dog.png", "rb").read()]))
    """

    kind = "image"

    def __init__(
        self,
        model_name: str = DEFAULT_IMAGE_MODEL,
        models_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: Sequence[str | tuple[str, dict]] | None = None,
    ) -> None:
        require_pillow()
        self.model_name = model_name
        self.baked: BakedModel = find_model(model_name, models_dir, kind=self.kind)
        self.preprocessor = ImagePreprocessor.from_dir(self.baked.path)
        self.threads = threads
        self.providers = providers
        self._session = None
        self._input_name = ""
        self._output_name = self.manifest.onnx.get("output")

    @property
    def manifest(self) -> Manifest:
        return self.baked.manifest

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    @property
    def session(self):
        """The ONNX Runtime session, created on first use."""
        if self._session is None:
            self._session = create_session(self.baked.model_path, self.threads, self.providers)
            self._input_name = self._session.get_inputs()[0].name
            if self._output_name is None:
                self._output_name = self._session.get_outputs()[0].name
        return self._session

    def load(self) -> None:
        """Create the session now rather than on first use."""
        _ = self.session

    @staticmethod
    def list_supported_models() -> list[dict]:
        return list_supported_models("image")

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """One preprocessed batch [N, 3, H, W] -> vectors [N, dim] (normalised if the model is)."""
        session = self.session
        (output,) = session.run([self._output_name], {self._input_name: pixels})
        if output.ndim == 3:  # token outputs: pool them as the description says
            output = pool(self.manifest.pooling, output, np.ones(output.shape[:2], np.int64))
        vectors = output.reshape(len(pixels), -1).astype(np.float32, copy=False)
        return normalize(vectors) if self.manifest.normalize else vectors

    def embed(
        self,
        images: ImageInput | Iterable[ImageInput],
        batch_size: int = DEFAULT_IMAGE_BATCH_SIZE,
    ) -> Iterator[np.ndarray]:
        """float32 vectors in input order; images are file paths, bytes or PIL images.

        Any iterable works; at most ``batch_size`` images are open at a time. A bad item raises
        an error that names its index (``images[i]``).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if _is_single(images):
            images = [images]
        iterator = iter(images)
        offset = 0
        while batch := list(islice(iterator, batch_size)):
            opened = [open_image(item, offset + i) for i, item in enumerate(batch)]
            yield from self.run(self.preprocessor(opened, offset))
            offset += len(batch)


def _is_single(images: object) -> bool:
    if isinstance(images, str | bytes | bytearray | memoryview | os.PathLike):
        return True
    Image = require_pillow()
    return isinstance(images, Image.Image)


__all__ = ["DEFAULT_IMAGE_MODEL", "ImageEmbedding"]
