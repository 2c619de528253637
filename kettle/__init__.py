"""kettle: text in, vectors out, on ONNX Runtime + tokenizers + numpy."""

from kettle.bm25 import Bm25
from kettle.dense import TextEmbedding
from kettle.hybrid import HybridIndex, SearchHit, reciprocal_rank_fusion
from kettle.manifest import Manifest, ManifestError
from kettle.registry import (
    DEFAULT_MODEL,
    MODELS,
    ModelDescription,
    UnknownModelError,
    get_model,
    list_supported_models,
    register_model,
)
from kettle.rerank import RerankResult, TextCrossEncoder
from kettle.session import available_cpus
from kettle.sparse import SparseEmbedding, SparseTextEmbedding
from kettle.store import ModelNotBakedError, find_model, list_baked

__version__ = "0.1.0"

__all__ = [
    "Bm25",
    "DEFAULT_MODEL",
    "MODELS",
    "Manifest",
    "ManifestError",
    "ModelDescription",
    "HybridIndex",
    "ModelNotBakedError",
    "RerankResult",
    "SearchHit",
    "SparseEmbedding",
    "SparseTextEmbedding",
    "TextCrossEncoder",
    "TextEmbedding",
    "UnknownModelError",
    "available_cpus",
    "find_model",
    "get_model",
    "list_baked",
    "list_supported_models",
    "reciprocal_rank_fusion",
    "register_model",
]
