"""kettle: text in, vectors out, on ONNX Runtime + tokenizers + numpy."""

from kettle.dense import TextEmbedding
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
from kettle.session import available_cpus
from kettle.store import ModelNotBakedError, find_model, list_baked

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "Manifest",
    "ManifestError",
    "ModelDescription",
    "ModelNotBakedError",
    "TextEmbedding",
    "UnknownModelError",
    "available_cpus",
    "find_model",
    "get_model",
    "list_baked",
    "list_supported_models",
    "register_model",
]
