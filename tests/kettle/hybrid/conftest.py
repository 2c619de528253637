"""The random cross-encoder of tests/kettle/rerank, for the example's rerank stage."""

from tests.kettle.rerank._rerank_model import (  # noqa: F401 (pytest finds fixtures by name)
    cross_encoder_checkpoint,
    cross_encoder_name,
    rerank_fp32_dir,
)
