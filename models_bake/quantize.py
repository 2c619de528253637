"""Graph optimisation (ONNX Runtime's transformer fusion) and dynamic int8 quantization.

The scheme is chosen by measurement on CPU (see README, "Choosing the int8 scheme"); every bake
records the one it used in its manifest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("models_bake")


@dataclass(frozen=True)
class QuantScheme:
    """Settings of onnxruntime.quantization.quantize_dynamic."""

    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    # The embedding table (EmbedLayerNormalization once fused, else Gather) is most of a small
    # model's bytes: int8 there takes all-MiniLM-L6-v2 from 58 MB to 23 MB at the same fidelity.
    op_types: tuple[str, ...] = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
    fused: bool = True  # transformer fusion before quantizing
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        record = asdict(self)
        record["op_types"] = list(self.op_types)
        record["method"] = "onnxruntime.quantization.quantize_dynamic"
        return record


DEFAULT_SCHEME = QuantScheme()


def fuse_transformer(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ONNX Runtime's BERT fusion (Attention, SkipLayerNormalization, BiasGelu, ...) into ``dst``.

    Returns the fused-operator counts so the bake can log what happened.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        use_gpu=False,
    )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(str(dst))
    return stats


def quantize_int8(src: Path, dst: Path, scheme: QuantScheme = DEFAULT_SCHEME) -> None:
    """Dynamic int8 quantization of the weights of ``src`` into ``dst``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference; their
    # tensors are float32.
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT} | dict(scheme.extra)

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=getattr(QuantType, scheme.weight_type),
        per_channel=scheme.per_channel,
        reduce_range=scheme.reduce_range,
        op_types_to_quantize=list(scheme.op_types),
        extra_options=extra,
    )
