"""The random cross-encoder fixtures (tests/rerank/_rerank_model.py) for --rerank."""

from tests.rerank._rerank_model import (  # noqa: F401 (pytest finds fixtures by name)
    cross_encoder_checkpoint,
    cross_encoder_name,
    rerank_fp32_dir,
)
