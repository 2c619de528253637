from tests.kettle.rerank._rerank_model import (  # noqa: F401
    cross_encoder_checkpoint,
    cross_encoder_name,
    rerank_fp32_dir,
)
