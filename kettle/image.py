"""Image embeddings: one normalised float32 vector per image, from a baked ONNX image encoder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np

from kettle.onnx_model import OnnxModel
from kettle.parallel import WorkerPool, embed_images, workers_for
from kettle.pooling import normalize, pool
from kettle.preprocess import ImageInput, ImagePreprocessor, open_image, require_pillow

DEFAULT_IMAGE_MODEL = "Qdrant/clip-ViT-B-32-vision"
DEFAULT_IMAGE_BATCH_SIZE = 16


class ImageEmbedding(OnnxModel):
    """Dense image embeddings (CLIP vision towers, ViT, ResNet) from a baked model.

    >>> model = ImageEmbedding("Qdrant/clip-ViT-B-32-vision")
    >>> vectors = list(model.embed(["cat.jpg", open("dog.png", "rb").read()]))
    """

    kind = "image"
    default_model = DEFAULT_IMAGE_MODEL

    def _setup(self) -> None:
        require_pillow()
        self.preprocessor = ImagePreprocessor.from_dir(self.baked.path)

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """One preprocessed batch [N, 3, H, W] -> vectors [N, dim] (normalised if the model is)."""
        session = self.session
        (output,) = session.run([self._output_name], {self._input_names[0]: pixels})
        if output.ndim == 3:  # token outputs: pool them as the description says
            output = pool(self.manifest.pooling, output, np.ones(output.shape[:2], np.int64))
        vectors = output.reshape(len(pixels), -1).astype(np.float32, copy=False)
        return normalize(vectors) if self.manifest.normalize else vectors

    def embed(
        self,
        images: ImageInput | Iterable[ImageInput],
        batch_size: int = DEFAULT_IMAGE_BATCH_SIZE,
        parallel: int | None = None,
    ) -> Iterator[np.ndarray]:
        """float32 vectors in input order; images are file paths, bytes or PIL images.

        Any iterable works; at most ``batch_size`` images are open at a time. A bad item raises
        an ImageInputError that names its index (``images[i]``, ``.index``). ``parallel``: that
        many worker processes (0: one per CPU) embed the same batches, in input order.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if _is_single(images):
            images = [images]
        workers = workers_for(parallel, images, batch_size)
        batches = _batches(images, batch_size)
        if not workers:
            for offset, batch in batches:
                yield from self.embed_batch(batch, offset)
            return
        with WorkerPool(self, workers) as pool:
            for vectors in pool.imap(embed_images, batches):
                yield from vectors

    def embed_batch(self, images: list[ImageInput], offset: int = 0) -> np.ndarray:
        """One batch of images -> [N, dim]; errors name ``images[offset + i]``."""
        opened = [open_image(item, offset + i) for i, item in enumerate(images)]
        return self.run(self.preprocessor(opened, offset))


def _batches(images: Iterable[ImageInput], size: int) -> Iterator[tuple[int, list]]:
    iterator = iter(images)
    offset = 0
    while batch := list(islice(iterator, size)):
        yield offset, batch
        offset += len(batch)


def _is_single(images: object) -> bool:
    if isinstance(images, str | bytes | bytearray | memoryview | os.PathLike):
        return True
    Image = require_pillow()
    return isinstance(images, Image.Image)


__all__ = ["DEFAULT_IMAGE_MODEL", "ImageEmbedding"]
