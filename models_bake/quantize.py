"""Graph optimisation (ONNX Runtime's transformer fusion) and int8 quantization.

Two schemes, chosen by measurement on CPU (README, "Choosing the int8 scheme"; the numbers come from
``python bench/quant_schemes.py``); every bake records the one it used in its manifest:

- ``int8`` (default): dynamic quantization (``quantize_dynamic``) of the fused graph, per-channel
  int8 weights, activations quantized per batch at run time. The fastest; a text's vector moves a
  little with the texts batched beside it (the manifest's ``batch_consistency_min_cosine``).
- ``int8-blockwise``: weight-only blockwise int8 (``MatMulNBits``, blocks of 32, int8 compute with
  activations quantized per row and block). Closer to fp32 and batch-independent, slower on CPU.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("models_bake")


@dataclass(frozen=True)
class QuantScheme:
    """Settings of one quantization scheme (see the module docstring)."""

    method: str = "dynamic"  # "dynamic" (quantize_dynamic) | "blockwise" (MatMulNBits)
    # QUInt8 weights (U8U8 kernels): on AVX2 CPUs without VNNI, MLAS's U8S8 kernel sums pairs of
    # u8 x s8 products in int16 (vpmaddubsw) and saturates, which took the tiny SPLADE's mean
    # cosine to 0.987; U8U8 widens to int16 first and does not saturate, at the same speed.
    weight_type: str = "QUInt8"
    per_channel: bool = True
    reduce_range: bool = False
    # The embedding table (EmbedLayerNormalization once fused, else Gather) is most of a small
    # model's bytes: int8 there takes all-MiniLM-L6-v2 from 58 MB to 23 MB at the same fidelity.
    op_types: tuple[str, ...] = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
    fused: bool = True  # transformer fusion before quantizing
    block_size: int = 32  # blockwise only
    accuracy_level: int = 4  # blockwise only: 4 = int8 compute
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        record = asdict(self)
        record["op_types"] = list(self.op_types)
        if self.method == "dynamic":
            for key in ("block_size", "accuracy_level"):
                record.pop(key)
        return record


DEFAULT_SCHEME = QuantScheme()
# Fusion would hide the Q/K/V weights inside Attention, where MatMulNBits cannot reach them.
BLOCKWISE_SCHEME = QuantScheme(
    method="blockwise", weight_type="int8", per_channel=False, op_types=("MatMul",), fused=False
)
SCHEMES = {"int8": DEFAULT_SCHEME, "int8-blockwise": BLOCKWISE_SCHEME}


def fuse_transformer(
    src: Path, dst: Path, num_heads: int, hidden_size: int, embed_layer_norm: bool = True
) -> dict[str, int]:
    """ONNX Runtime's BERT fusion (Attention, SkipLayerNormalization, BiasGelu, ...) into ``dst``.

    ``embed_layer_norm=False`` keeps the embeddings unfused: EmbedLayerNormalization assumes
    BERT's word + position + segment tables and would take another family's tables for them.
    Returns the fused-operator counts so the bake can log what happened.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    external = _external(src)
    options = FusionOptions("bert")
    options.enable_embed_layer_norm = embed_layer_norm
    # In-memory ONNX shape inference refuses models past 2 GB; the fusions run without it.
    options.enable_shape_inference = not external
    model = optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        use_gpu=False,
        optimization_options=options,
    )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(str(dst), use_external_data_format=external)
    return stats


def quantize_int8(src: Path, dst: Path, scheme: QuantScheme = DEFAULT_SCHEME) -> None:
    """Quantize ``src`` into ``dst`` with ``scheme``."""
    if scheme.method == "blockwise":
        _quantize_blockwise(src, dst, scheme)
        return
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
        use_external_data_format=_external(src),
    )


def _external(path: Path) -> bool:
    """Whether an ONNX file keeps its weights outside (past protobuf's 2 GB)."""
    from models_bake.convert.common import external_data_files

    return bool(external_data_files(path))


def _quantize_blockwise(src: Path, dst: Path, scheme: QuantScheme) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        bits=8,
        block_size=scheme.block_size,
        is_symmetric=True,
        accuracy_level=scheme.accuracy_level,
        op_types_to_quantize=scheme.op_types,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
