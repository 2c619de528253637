"""Graph optimisation (ONNX Runtime's transformer fusion) and int8 quantization.

Three schemes, chosen by measurement on CPU (README, "Choosing the int8 scheme"; the numbers come
from ``python bench/quant_schemes.py``); every bake records the one it used in its manifest:

- ``int8`` (default): per-row dynamic int8. Each MatMul's activation rows are scaled by their own
  max |x| (ReduceMax over the hidden axis, in the graph) and quantized to uint8 around 128; the
  weights are per-column symmetric uint8; the int32 product is rescaled by row scale x column scale.
  A row's scale depends on that row alone, so a text's vector does not depend on what is batched
  beside it. Attention is fused as MultiHeadAttention so that Q, K and V stay separate MatMuls.
- ``int8-dynamic``: ``quantize_dynamic`` of the fused graph (QAttention, DynamicQuantizeMatMul):
  one activation scale per tensor, computed over the whole batch at run time, so a text's vector
  moves with its batch. The default before issue 10.
- ``int8-blockwise``: weight-only blockwise int8 (``MatMulNBits``, blocks of 32, int8 compute with
  activations quantized per row and block). Closest to fp32 and batch-independent; slow on AVX2.

uint8 weights everywhere (U8U8 kernels): on AVX2 CPUs without VNNI, MLAS's U8S8 kernel sums pairs
of u8 x s8 products in int16 (vpmaddubsw) and saturates (the tiny SPLADE's mean cosine fell to 0.987
with QInt8 weights); U8U8 widens to int16 first.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("models_bake")


@dataclass(frozen=True)
class QuantScheme:
    """Settings of one quantization scheme (see the module docstring)."""

    # "rowwise" (per-row dynamic, this module's rewrite) | "dynamic" (quantize_dynamic) |
    # "blockwise" (MatMulNBits)
    method: str = "rowwise"
    weight_type: str = "QUInt8"
    per_channel: bool = True
    reduce_range: bool = False
    # The embedding table (EmbedLayerNormalization once fused, else Gather) is most of a small
    # model's bytes: int8 there takes all-MiniLM-L6-v2 from 58 MB to 23 MB at the same fidelity.
    op_types: tuple[str, ...] = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
    fused: bool = True  # transformer fusion before quantizing
    # MultiHeadAttention instead of Attention: Q, K, V stay MatMuls the rewrite can reach.
    multi_head_attention: bool = False
    # MatMuls (by weight initializer name) kept in fp32: mixed precision.
    keep_fp32: tuple[str, ...] = ()
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
# list: it cannot pass the batch-invariance gate.
AUTO_ORDER = ("int8", "int8-blockwise")


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
    if scheme.method == "rowwise":
        _quantize_rowwise(src, dst, scheme)
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


def _quantize_rowwise(src: Path, dst: Path, scheme: QuantScheme) -> None:
    """Per-row dynamic int8 (module docstring): the embedding tables through quantize_dynamic,
    then every MatMul with a constant 2-D weight rewritten by :func:`rowwise_matmuls`."""
    import onnx

    tables = [t for t in scheme.op_types if t in _TABLE_OPS]
    if tables:
        staged = dst.with_suffix(".tables.onnx")
        _quantize_dynamic(src, staged, scheme, tables)
        model = onnx.load(str(staged))
        staged.unlink()
    else:
        model = onnx.load(str(src))
    if "MatMul" in scheme.op_types:
        rowwise_matmuls(model, scheme.weight_type, scheme.reduce_range, set(scheme.keep_fp32))
    onnx.save(model, str(dst))


def rowwise_matmuls(
    model, weight_type: str = "QUInt8", reduce_range: bool = False, keep: set[str] = frozenset()
) -> int:
    """Rewrite ``model`` in place: each ``Y = X @ W`` (W a 2-D initializer) becomes

        s  = max(ReduceMax(|X|, last axis), eps) / 127          one scale per row
        Xq = Cast(Round(X * (127 / max(...))) + 128, uint8)      symmetric, zero point 128
        Y  = Cast(MatMulInteger(Xq, Wq, 128, zp_w), float) * w_scale * s

    with ``Wq`` per-column symmetric int8 (stored as uint8 around 128 for QUInt8). Returns the
    number of MatMuls rewritten. ONNX Runtime merges the row-scale nodes of MatMuls that share an
    input (Q, K, V), so the activation is quantized once.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    inits = {i.name: i for i in graph.initializer}
    consts: list = []

    def const(name: str, value) -> str:
        consts.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    eps = const("rowq_eps", np.array(1e-12, np.float32))
    q127 = const("rowq_127", np.array(127.0, np.float32))
    inv127 = const("rowq_inv127", np.array(1 / 127, np.float32))
    f128 = const("rowq_128", np.array(128.0, np.float32))
    a_zp = const("rowq_a_zp", np.array(128, np.uint8))
    reduce_inputs = [const("rowq_axes", np.array([-1], np.int64))] if opset >= 18 else []
    reduce_attrs = {} if opset >= 18 else {"axes": [-1]}
    qmax = 63 if reduce_range else 127
    nodes, done = [], 0
    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or w.name in keep or w.data_type != TensorProto.FLOAT:
            nodes.append(node)
            continue
        weights = numpy_helper.to_array(w).astype(np.float32)
        w_scale = (np.maximum(np.abs(weights).max(axis=0), 1e-12) / qmax).astype(np.float32)
        wq = np.clip(np.round(weights / w_scale), -qmax, qmax)
        if weight_type == "QUInt8":
            wq, w_zp = (wq + 128).astype(np.uint8), np.full(wq.shape[1], 128, np.uint8)
        else:
            wq, w_zp = wq.astype(np.int8), np.zeros(wq.shape[1], np.int8)
        p = f"rowq{done}_"
        const(p + "w", wq), const(p + "w_zp", w_zp), const(p + "w_scale", w_scale)
        x, y = node.input[0], node.output[0]
        make = helper.make_node
        nodes += [
            make("Abs", [x], [p + "abs"]),
            make(
                "ReduceMax", [p + "abs", *reduce_inputs], [p + "amax"], keepdims=1, **reduce_attrs
            ),
            make("Max", [p + "amax", eps], [p + "amax_eps"]),
            make("Mul", [p + "amax_eps", inv127], [p + "scale"]),
            make("Div", [q127, p + "amax_eps"], [p + "inv_scale"]),
            make("Mul", [x, p + "inv_scale"], [p + "x_scaled"]),
            make("Round", [p + "x_scaled"], [p + "x_round"]),
            make("Add", [p + "x_round", f128], [p + "x_shift"]),
            make("Cast", [p + "x_shift"], [p + "x_q"], to=TensorProto.UINT8),
            make("MatMulInteger", [p + "x_q", p + "w", a_zp, p + "w_zp"], [p + "y_int"]),
            make("Cast", [p + "y_int"], [p + "y_cast"], to=TensorProto.FLOAT),
            make("Mul", [p + "y_cast", p + "w_scale"], [p + "y_col"]),
            make("Mul", [p + "y_col", p + "scale"], [y], name=node.name or p + "out"),
        ]
        done += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + [c for c in consts if c.name in used])
    return done
