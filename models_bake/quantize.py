"""int8 schemes: their settings, the choice between them, ONNX Runtime's fusion and quantizers.

The per-row scheme's hand-written graph rewrites and the probes that measure them are
models_bake.rewrites; this module decides which of them a scheme applies.

The schemes, chosen by measurement on CPU (README, "Choosing the int8 scheme"; the numbers come
from ``python bench/quant_schemes.py``); every bake records the one it used in its manifest:

- ``int8`` (default): per-row dynamic int8. Each MatMul's activation rows are scaled by their own
  max |x| (ReduceMax/ReduceMin over the hidden axis, in the graph) and quantized by one per-axis
  QuantizeLinear to uint8 around 128; the weights are per-column symmetric int8; one
  MatMulIntegerToFloat per MatMul applies the column scales and a Mul the row scales. A row's scale
  depends on that row alone, so a text's vector does not depend on what is batched beside it.
  Base-size encoders have a few activation channels 20-70x the median (all-mpnet-base-v2's FFN
  input: channels 555, 568 and 461 reach 40-66 where the median channel's max is 1.4); a per-row
  scale spends the int8 range on them. The bake measures each activation's per-channel max on
  calibration texts in one fp32 pass (``rewrites.activation_ranges``) and smooths it,
  SmoothQuant's migration (``rewrites.smooth_factors``): x / s per channel before the row scale,
  s folded into the weights' rows, which are quantized per column and absorb it.
  all-mpnet-base-v2 went from min cosine 0.946 to 0.982 on the gate's texts.
  Attention is fused as MultiHeadAttention so that Q, K and V stay separate MatMuls, and each
  SkipLayerNormalization is split back into Add + LayerNormalization (ONNX Runtime's fused CPU
  kernel is the slower one: ``rewrites.split_skip_layer_norms``). A sparse (SPLADE) model's
  vocabulary head, up to a hidden size of 256, is computed transposed, so that the row scale is
  the kernel's own per-column scale, and max-pooled over the attention mask in the graph
  (``rewrites.pooled_sparse_head``: output ``max_logits``): the tokens x vocab array gets one
  pass instead of four.
- ``int8-dynamic``: ``quantize_dynamic`` of the fused graph (QAttention, DynamicQuantizeMatMul),
  int8 weights: one activation scale per tensor, computed over the whole batch at run time, so a
  text's vector moves with its batch. The default before issue 10.
- ``int8-mixed`` (``--quantize auto`` only, after ``int8`` misses the gate): ``int8`` with the
  MatMuls of largest int8 error, ranked in one pass (``rewrites.matmul_errors``), kept in fp32
  (``models_bake.bake.mixed_precision_search``).
- ``int8-blockwise``: weight-only blockwise int8 (``MatMulNBits``, blocks of 32, int8 compute with
  activations quantized per row and block). Closest to fp32 and batch-independent; slow on CPU.

int8 weights (U8S8 kernels) are the fast path on VNNI CPUs and arm64. On AVX2 without VNNI, MLAS's
U8S8 kernel adds two adjacent u8 x s8 products in int16 (``vpmaddubsw``) and saturates past 32767;
the default scheme's weights are scaled so that no two adjacent ones pass 128 in magnitude
(``pair_safe``), which cannot saturate: a bake gives the same vectors on every x86 CPU (tested by
running one under ``qemu-x86_64 -cpu Haswell``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from models_bake.rewrites import (
    pooled_sparse_head,
    rowwise_matmuls,
    smooth_factors,
    split_skip_layer_norms,
)

log = logging.getLogger("models_bake")


@dataclass(frozen=True)
class QuantScheme:
    """Settings of one quantization scheme (see the module docstring)."""

    # "rowwise" (per-row dynamic, rewrites.rowwise_matmuls) | "dynamic" (quantize_dynamic) |
    # "blockwise" (MatMulNBits)
    method: str = "rowwise"
    weight_type: str = "QInt8"
    per_channel: bool = True
    # rowwise, QInt8: column scales that keep two adjacent int8 weights within 128 (no AVX2
    # saturation; see rowwise_matmuls)
    pair_safe: bool = True
    reduce_range: bool = False
    # The embedding table (EmbedLayerNormalization once fused, else Gather) is most of a small
    # model's bytes: int8 there takes all-MiniLM-L6-v2 from 58 MB to 23 MB at the same fidelity.
    op_types: tuple[str, ...] = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
    fused: bool = True  # transformer fusion before quantizing
    # MultiHeadAttention instead of Attention: Q, K, V stay MatMuls the rewrite can reach.
    multi_head_attention: bool = False
    # MatMuls (by weight initializer name) kept in fp32: mixed precision.
    keep_fp32: tuple[str, ...] = ()
    # rowwise: SkipLayerNormalization back into Add + LayerNormalization (split_skip_layer_norms)
    split_skip_layer_norm: bool = True
    # rowwise, sparse (SPLADE) models of this hidden size or less (0: none): the vocabulary head
    # transposed and max-pooled over the attention mask in the graph, output max_logits [batch,
    # vocab] (pooled_sparse_head). Measured (2 threads, AVX-512 VNNI, 30,522 terms, 1,536
    # tokens): the head 2.2x faster at hidden 128, 1.3x at 256, 0.9x at 320, 0.56x at 768, where
    # ONNX Runtime's kernel with the weights as its unpacked first input is the slow part.
    pooled_head_max_hidden: int = 256
    # rowwise: SmoothQuant's migration strength (0: none). Each quantized activation is divided
    # per channel by s_j = max|x_j|^alpha / max|w_j|^(1 - alpha) (max|x_j| from calibration texts,
    # activation_ranges) and the weights' rows multiplied by it: the product is unchanged, and the
    # few channels far larger than the rest no longer take each row's int8 range (smooth_factors).
    smooth_alpha: float = 0.5
    block_size: int = 32  # blockwise only
    accuracy_level: int = 4  # blockwise only: 4 = int8 compute
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        record = asdict(self)
        record["op_types"] = list(self.op_types)
        record["keep_fp32"] = list(self.keep_fp32)
        if self.method != "blockwise":
            for key in ("block_size", "accuracy_level"):
                record.pop(key)
        if self.method != "rowwise":
            for key in (
                "pair_safe",
                "split_skip_layer_norm",
                "pooled_head_max_hidden",
                "smooth_alpha",
            ):
                record.pop(key)
        return record


DEFAULT_SCHEME = QuantScheme(multi_head_attention=True)
DYNAMIC_SCHEME = QuantScheme(method="dynamic")
# Fusion would hide the Q/K/V weights inside Attention, where MatMulNBits cannot reach them.
BLOCKWISE_SCHEME = QuantScheme(
    method="blockwise", weight_type="int8", per_channel=False, op_types=("MatMul",), fused=False
)
SCHEMES = {
    "int8": DEFAULT_SCHEME,
    "int8-dynamic": DYNAMIC_SCHEME,
    "int8-blockwise": BLOCKWISE_SCHEME,
}
# What --quantize auto tries, fastest first on the AVX2 CPU it was measured on (README, "Choosing
# the int8 scheme"): the first that passes the gate wins, else fp32. int8-dynamic is not in the
# list: it cannot pass the batch-invariance gate. "int8-mixed" is int8 with the MatMuls of largest
# int8 error kept in fp32, chosen by measurement (models_bake.bake: mixed_precision_search).
MIXED = "int8-mixed"
AUTO_ORDER = ("int8", MIXED, "int8-blockwise")
# A bound on that search (each try is one more quantization and full measurement): past it auto
# moves on to int8-blockwise. Its ranking pass reads this many calibration texts.
MIXED_MAX_TRIES = 2
RANK_TEXTS = 48


def fuse_transformer(
    src: Path,
    dst: Path,
    num_heads: int,
    hidden_size: int,
    multi_head_attention: bool = False,
    embed_layer_norm: bool = True,
) -> dict[str, int]:
    """ONNX Runtime's BERT fusion (Attention, SkipLayerNormalization, BiasGelu, ...) into ``dst``.

    ``multi_head_attention``: fuse attention as MultiHeadAttention after separate Q, K, V MatMuls
    (the per-row scheme quantizes those) instead of Attention with one packed QKV weight.
    ``embed_layer_norm=False`` keeps the embeddings unfused: EmbedLayerNormalization assumes
    BERT's word + position + segment tables and would take another family's tables for them.
    Returns the fused-operator counts so the bake can log what happened.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    external = _external(src)
    options = FusionOptions("bert")
    options.use_multi_head_attention = multi_head_attention
    options.enable_embed_layer_norm = embed_layer_norm
    # In-memory ONNX shape inference refuses models past 2 GB; the fusions run without it.
    options.enable_shape_inference = not external

    # Its warnings (the converter is not "pytorch", a fusion that found no match) say nothing a
    # user of the bake can act on; the fused-operator counts go into the manifest instead.
    quiet = logging.getLogger("onnxruntime")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        model = optimize_model(
            str(src),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,
            use_gpu=False,
            optimization_options=options,
        )
    finally:
        quiet.setLevel(level)
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(str(dst), use_external_data_format=external)
    return stats


def quantize_int8(
    src: Path,
    dst: Path,
    scheme: QuantScheme = DEFAULT_SCHEME,
    kind: str = "dense",
    ranges: dict | None = None,
) -> None:
    """Quantize ``src`` (a model of ``kind``: dense, sparse, ...) into ``dst`` with ``scheme``.

    ``ranges``: :func:`models_bake.rewrites.activation_ranges` of ``src`` on calibration texts;
    the per-row scheme smooths its activations with them (``QuantScheme.smooth_alpha``), and
    quantizes without smoothing when they are missing."""
    if scheme.method == "blockwise":
        _quantize_blockwise(src, dst, scheme)
        return
    if scheme.method == "rowwise":
        _quantize_rowwise(src, dst, scheme, kind, ranges)
        return
    _quantize_dynamic(src, dst, scheme, scheme.op_types)


def _quantize_dynamic(src: Path, dst: Path, scheme: QuantScheme, op_types) -> None:
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
        op_types_to_quantize=list(op_types),
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


# Lookup tables only: their int8 form dequantizes weights, so it is batch-invariant by nature.
_TABLE_OPS = ("EmbedLayerNormalization", "Gather")


def _quantize_rowwise(
    src: Path, dst: Path, scheme: QuantScheme, kind: str = "dense", ranges: dict | None = None
) -> None:
    """Per-row dynamic int8 (module docstring): the embedding tables through quantize_dynamic,
    a sparse model's vocabulary head by :func:`pooled_sparse_head`, then every other MatMul with
    a constant 2-D weight rewritten by :func:`rowwise_matmuls`."""
    import onnx

    tables = [t for t in scheme.op_types if t in _TABLE_OPS]
    if tables:
        staged = dst.with_suffix(".tables.onnx")
        # Lookups dequantize their rows and run no integer kernel: the tables keep the uint8 form
        # they had before the MatMuls moved to int8 weights (the bake's figures were the same
        # with QInt8 here).
        _quantize_dynamic(src, staged, replace(scheme, weight_type="QUInt8"), tables)
        model = onnx.load(str(staged))
        staged.unlink()
    else:
        model = onnx.load(str(src))
    if "MatMul" in scheme.op_types:
        if kind == "sparse":
            pooled_sparse_head(
                model, set(scheme.keep_fp32), scheme.pair_safe, scheme.pooled_head_max_hidden
            )
        smooth = smooth_factors(model, ranges, scheme.smooth_alpha) if ranges else None
        rowwise_matmuls(
            model,
            scheme.weight_type,
            scheme.reduce_range,
            set(scheme.keep_fp32),
            scheme.pair_safe,
            smooth,
        )
    if scheme.split_skip_layer_norm:
        split_skip_layer_norms(model)
    onnx.save(model, str(dst))
