"""kettle: text in, vectors out, on ONNX Runtime + tokenizers + numpy.

Names load on first use (PEP 562): ``import kettle`` costs almost nothing, ``from kettle import
Bm25`` never loads ONNX Runtime, and ``kettle.ImageEmbedding`` only needs Pillow when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Bm25": "kettle.bm25",
    "TextEmbedding": "kettle.dense",
    "Embedded": "kettle.encoder",
    "ImageInputError": "kettle.errors",
    "InvalidTextError": "kettle.errors",
    "KettleInputError": "kettle.errors",
    "TextTooLongError": "kettle.errors",
    "HybridIndex": "kettle.hybrid",
    "SearchHit": "kettle.hybrid",
    "reciprocal_rank_fusion": "kettle.hybrid",
    "ImageEmbedding": "kettle.image",
    "LateInteractionTextEmbedding": "kettle.late_interaction",
    "Manifest": "kettle.manifest",
    "ManifestError": "kettle.manifest",
    "OnnxModel": "kettle.onnx_model",
    "quantize_embeddings": "kettle.output",
    "DEFAULT_MODEL": "kettle.registry",
    "MODELS": "kettle.registry",
    "ModelDescription": "kettle.registry",
    "ModelSource": "kettle.registry",
    "PoolingType": "kettle.registry",
    "UnknownModelError": "kettle.registry",
    "get_model": "kettle.registry",
    "list_supported_models": "kettle.registry",
    "register_model": "kettle.registry",
    "RerankResult": "kettle.rerank",
    "TextCrossEncoder": "kettle.rerank",
    "available_cpus": "kettle.session",
    "SparseEmbedding": "kettle.sparse",
    "SparseTextEmbedding": "kettle.sparse",
    "ModelNotBakedError": "kettle.store",
    "find_model": "kettle.store",
    "list_baked": "kettle.store",
}

__all__ = [  # the names of _EXPORTS, spelled out for linters and type checkers
    "Bm25",
    "DEFAULT_MODEL",
    "Embedded",
    "HybridIndex",
    "ImageEmbedding",
    "ImageInputError",
    "InvalidTextError",
    "KettleInputError",
    "LateInteractionTextEmbedding",
    "MODELS",
    "Manifest",
    "ManifestError",
    "ModelDescription",
    "ModelSource",
    "ModelNotBakedError",
    "OnnxModel",
    "PoolingType",
    "RerankResult",
    "SearchHit",
    "SparseEmbedding",
    "SparseTextEmbedding",
    "TextCrossEncoder",
    "TextEmbedding",
    "TextTooLongError",
    "UnknownModelError",
    "available_cpus",
    "find_model",
    "get_model",
    "list_baked",
    "list_supported_models",
    "quantize_embeddings",
    "reciprocal_rank_fusion",
    "register_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kettle' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from kettle.bm25 import Bm25
    from kettle.dense import TextEmbedding
    from kettle.encoder import Embedded
    from kettle.errors import ImageInputError, InvalidTextError, KettleInputError, TextTooLongError
    from kettle.hybrid import HybridIndex, SearchHit, reciprocal_rank_fusion
    from kettle.image import ImageEmbedding
    from kettle.late_interaction import LateInteractionTextEmbedding
    from kettle.manifest import Manifest, ManifestError
    from kettle.onnx_model import OnnxModel
    from kettle.output import quantize_embeddings
    from kettle.registry import (
        DEFAULT_MODEL,
        MODELS,
        ModelDescription,
        ModelSource,
        PoolingType,
        UnknownModelError,
        get_model,
        list_supported_models,
        register_model,
    )
    from kettle.rerank import RerankResult, TextCrossEncoder
    from kettle.session import available_cpus
    from kettle.sparse import SparseEmbedding, SparseTextEmbedding
    from kettle.store import ModelNotBakedError, find_model, list_baked
