"""The random cross-encoder fixtures (see _rerank_model.py)."""

from _rerank_model import (  # noqa: F401 (pytest finds fixtures by name)
    cross_encoder_checkpoint,
    cross_encoder_name,
    rerank_fp32_dir,
    rerank_int8_dir,
)
