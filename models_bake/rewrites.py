"""Hand-written ONNX graph rewrites of the per-row int8 scheme, and the probes that measure them.

Each function edits an ``onnx.ModelProto`` in place, or runs one with some of its inner tensors
exposed as outputs: the per-row int8 MatMul (``rowwise_matmuls``) with AVX2-safe weight pairs
(``pair_safe``), SmoothQuant's factors for it (``smooth_factors``, from ``activation_ranges``), a
SPLADE vocabulary head transposed and max-pooled in the graph (``pooled_sparse_head``),
SkipLayerNormalization split back into Add + LayerNormalization (``split_skip_layer_norms``) and
each rewritten MatMul's own int8 error (``matmul_errors``). Which of them a bake applies is the
scheme's choice (models_bake.quantize).
"""

from __future__ import annotations

from pathlib import Path


def rowwise_weights(path: Path) -> list[str]:
    """The weight names of the MatMuls the per-row rewrite quantizes, in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    return [w.name for node in model.graph.node if (w := _rowwise_weight(node, inits)) is not None]


def _rowwise_weight(node, inits: dict):
    """The constant 2-D float weight of a MatMul node (what the per-row rewrite quantizes), or
    None for any other node."""
    from onnx import TensorProto

    w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
    if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
        return None
    return w


def split_skip_layer_norms(model) -> int:
    """Rewrite ``model`` in place: each SkipLayerNormalization (input, skip, gamma[, beta[,
    bias]]) becomes ``LayerNormalization(input + bias + skip, gamma, beta)``.

    ONNX Runtime's CPU SkipLayerNormalization kernel is about 3x slower than the two Adds and the
    LayerNormalization it fuses (12.4 ms against 4.3 ms over 15,000 x 384 floats, 2 threads, ORT
    1.32): in the per-row int8 graph it was 18% of the time (ORT's profiler) and splitting it made
    the bake 15-20% faster. The session's optimizer fuses them again only where the Add follows a
    MatMul; after the per-row rewrite it follows a Reshape (tests/bake checks the loaded graph).
    The sum output (index 3, pre-LN models' residual) stays the Add's. Returns the count.
    """
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    if opset < 17:  # LayerNormalization is an operator from opset 17 on
        return 0
    nodes, done = [], 0
    for node in model.graph.node:
        if node.op_type != "SkipLayerNormalization" or node.domain != "com.microsoft":
            nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (5 - len(node.input))
        x, skip, gamma, beta, bias = inputs[:5]
        outputs = list(node.output) + [""] * (4 - len(node.output))
        if outputs[1] or outputs[2]:  # mean / inverse std: LayerNormalization's differ in shape
            nodes.append(node)
            continue
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        p = f"split_ln{done}_"
        total = outputs[3] or p + "sum"
        if bias:
            nodes.append(helper.make_node("Add", [x, bias], [p + "biased"]))
            x = p + "biased"
        nodes += [
            helper.make_node("Add", [x, skip], [total]),
            helper.make_node(
                "LayerNormalization",
                [total, gamma] + ([beta] if beta else []),
                [outputs[0]],
                name=node.name or p + "ln",
                axis=-1,
                epsilon=epsilon,
            ),
        ]
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done


def _limit_pairs(wq, limit: int) -> None:
    """Rounding can take a pair of quantized weights one past ``limit`` (64.5 + 63.5 -> 65 + 64):
    step the larger magnitude of each such pair back by one, in place."""
    import numpy as np

    k = wq.shape[0] - wq.shape[0] % 2
    first, second = wq[0:k:2], wq[1:k:2]  # views into wq
    over = np.abs(first) + np.abs(second) > limit
    bigger = np.abs(first) >= np.abs(second)
    first -= np.sign(first) * (over & bigger)
    second -= np.sign(second) * (over & ~bigger)


def rowwise_matmuls(
    model,
    weight_type: str = "QInt8",
    reduce_range: bool = False,
    keep: set[str] = frozenset(),
    pair_safe: bool = True,
    smooth: dict | None = None,
) -> int:
    """Rewrite ``model`` in place: each ``Y = X @ W`` (W a 2-D initializer of K x N) becomes

        X2 = Reshape(X, [-1, K])                                  rows of the activation
        s  = max(ReduceMax(X2), -ReduceMin(X2), eps) / 127        one scale per row
        Xq = QuantizeLinear(X2, s, 128, axis=0)                   uint8, symmetric around 128
        Y  = Reshape(MatMulIntegerToFloat(Xq, Wq, 1, w_scale, 128, zp_w) * s, [..., N])

    ``Wq`` is per-column symmetric int8 (QInt8) or uint8 around 128 (QUInt8). One quantization per
    activation tensor: MatMuls that share an input (Q, K, V) share its ``Xq``. ``pair_safe`` (QInt8):
    each column's scale also keeps ``|q[2j]| + |q[2j+1]| <= 128``, so that AVX2 without VNNI, whose
    U8S8 kernel adds two u8 x s8 products in int16 (``vpmaddubsw``), cannot saturate: 255 x 128 <
    32767. ``smooth`` (activation name -> per-channel factors ``s``, :func:`smooth_factors`):
    ``X2`` becomes ``X2 * (1 / s)`` before its row scale and ``W`` becomes ``diag(s) W``.
    Returns the number of MatMuls rewritten.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    if opset < 13:
        raise ValueError(
            f"the per-row int8 rewrite needs opset >= 13 (per-axis QuantizeLinear), not {opset}"
        )
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    inits = {i.name: i for i in graph.initializer}
    consts: list = []

    def const(name: str, value) -> str:
        consts.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    eps = const("rowq_eps", np.array(1e-12, np.float32))
    inv127 = const("rowq_inv127", np.array(1 / 127, np.float32))
    zero = const("rowq_zero", np.array(0.0, np.float32))
    f128 = const("rowq_128", np.array(128.0, np.float32))
    one = const("rowq_one", np.array(1.0, np.float32))
    a_zp = const("rowq_a_zp", np.array(128, np.uint8))
    last = const("rowq_last", np.array([-1], np.int64))
    first = const("rowq_first", np.array([0], np.int64))
    reduce_inputs = [last] if opset >= 18 else []
    reduce_attrs = {} if opset >= 18 else {"axes": [-1]}
    qmax = 63 if reduce_range else 127
    limit_pairs = pair_safe and weight_type == "QInt8"  # uint8 weights use U8U8: no int16 pairs
    make = helper.make_node
    nodes, done, rows = [], 0, {}
    for node in graph.node:
        w = _rowwise_weight(node, inits)
        if w is None or w.name in keep:
            nodes.append(node)
            continue
        weights = numpy_helper.to_array(w).astype(np.float32)
        k, n = weights.shape
        x, y = node.input[0], node.output[0]
        factors = (smooth or {}).get(x)
        if factors is not None:
            weights = weights * factors[:, None]
        w_scale = np.maximum(np.abs(weights).max(axis=0), 1e-12) / qmax
        if limit_pairs:
            magnitude = np.abs(np.concatenate([weights, np.zeros((k % 2, n), np.float32)]))
            w_scale = np.maximum(w_scale, (magnitude[0::2] + magnitude[1::2]).max(axis=0) / 128)
        w_scale = w_scale.astype(np.float32)
        wq = np.clip(np.round(weights / w_scale), -qmax, qmax)
        if limit_pairs:
            _limit_pairs(wq, 128)
        if weight_type == "QUInt8":
            wq, w_zp = (wq + 128).astype(np.uint8), np.full(n, 128, np.uint8)
        else:
            wq, w_zp = wq.astype(np.int8), np.zeros(n, np.int8)
        if x not in rows:  # quantize each activation once
            r = f"rowq_x{len(rows)}_"
            nodes.append(
                make("Reshape", [x, const(r + "k", np.array([-1, k], np.int64))], [r + "2d"])
            )
            x2 = r + "2d"
            if factors is not None:
                inverse = const(r + "smooth", (1 / factors).astype(np.float32))
                nodes.append(make("Mul", [x2, inverse], [r + "2d_smooth"]))
                x2 = r + "2d_smooth"
            nodes += [
                make("ReduceMax", [x2, *reduce_inputs], [r + "max"], keepdims=0, **reduce_attrs),
                make("ReduceMin", [x2, *reduce_inputs], [r + "min"], keepdims=0, **reduce_attrs),
                make("Neg", [r + "min"], [r + "neg_min"]),
                make("Max", [r + "max", r + "neg_min", eps], [r + "amax"]),
                make("Mul", [r + "amax", inv127], [r + "scale"]),
                # a zero point per row (per-axis QuantizeLinear wants one of the scale's shape)
                make("Mul", [r + "scale", zero], [r + "zeros"]),
                make("Add", [r + "zeros", f128], [r + "zp_f"]),
                make("Cast", [r + "zp_f"], [r + "zp"], to=TensorProto.UINT8),
                make("QuantizeLinear", [x2, r + "scale", r + "zp"], [r + "q"], axis=0),
                make("Unsqueeze", [r + "scale", last], [r + "scale_col"]),
                make("Shape", [x], [r + "shape"]),
                make("Slice", [r + "shape", first, last], [r + "lead"]),
            ]
            rows[x] = r
        r, p = rows[x], f"rowq{done}_"
        const(p + "w", wq), const(p + "w_zp", w_zp), const(p + "w_scale", w_scale)
        nodes += [
            make(
                "MatMulIntegerToFloat",
                [r + "q", p + "w", one, p + "w_scale", a_zp, p + "w_zp"],
                [p + "y_col"],
                domain="com.microsoft",
            ),
            make("Mul", [p + "y_col", r + "scale_col"], [p + "y_2d"]),
            make(
                "Concat",
                [r + "lead", const(p + "n", np.array([n], np.int64))],
                [p + "shape"],
                axis=0,
            ),
            make("Reshape", [p + "y_2d", p + "shape"], [y], name=node.name or p + "out"),
        ]
        done += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + [c for c in consts if c.name in used])
    return done


def activation_ranges(path: Path, batches, threads: int = 0) -> dict:
    """Per-channel max |x| of every activation the per-row rewrite quantizes (the inputs of the
    MatMuls :func:`rowwise_weights` lists), over ``batches`` (padded feeds with an
    ``attention_mask``; padding rows are left out) run through the fp32 graph at ``path``: one
    pass, the graph's own outputs beside them."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    names = list(
        dict.fromkeys(n.input[0] for n in model.graph.node if _rowwise_weight(n, inits) is not None)
    )
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    del model, inits
    wanted = {i.name for i in session.get_inputs()}
    ranges: dict = {}
    for feeds in batches:
        keep = np.asarray(feeds["attention_mask"]).astype(bool)
        values = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
        for name, x in zip(names, values, strict=True):
            x = x[keep] if x.ndim == 3 and x.shape[:2] == keep.shape else x.reshape(-1, x.shape[-1])
            top = np.abs(x).max(axis=0) if len(x) else np.zeros(x.shape[-1], np.float32)
            ranges[name] = np.maximum(ranges[name], top) if name in ranges else top
    return ranges


def matmul_errors(fp32_path: Path, int8_path: Path, batches, rows: int = 1024) -> list[dict]:
    """Each per-row int8 MatMul's own error, from one pass of the int8 graph at ``int8_path``
    over ``batches``: its output beside ``x @ W``, the same int8-graph input ``x`` times the fp32
    weights of ``fp32_path`` (so the error upstream does not count against it), as
    ``||y_int8 - x W|| / ||x W||`` over up to ``rows`` token rows (sampled evenly: the numpy
    product is the pass's own cost). Returns ``[{"weight", "error"}]``, worst first; the
    MatMuls of ``fp32_path`` the int8 graph does not quantize (kept fp32) are left out."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    fp32 = onnx.load(str(fp32_path))
    inits = {i.name: i for i in fp32.graph.initializer}
    matmuls = [
        (w, n.input[0], n.output[0])
        for n in fp32.graph.node
        if (w := _rowwise_weight(n, inits)) is not None
    ]
    model = onnx.load(str(int8_path))
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    # a MatMul still in the int8 graph was kept fp32: nothing to measure
    matmuls = [m for m in matmuls if produced.get(m[2]) == "Reshape"]
    names = list(dict.fromkeys(t for _, x, y in matmuls for t in (x, y)))
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    del model
    wanted = {i.name for i in session.get_inputs()}
    sampled: dict = {name: [] for name in names}
    batches = list(batches)
    total = sum(int(np.asarray(f["attention_mask"]).sum()) for f in batches)
    step = max(1, total // rows)
    for feeds in batches:
        keep = np.asarray(feeds["attention_mask"]).astype(bool)
        values = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
        for name, x in zip(names, values, strict=True):
            x = x[keep] if x.ndim == 3 and x.shape[:2] == keep.shape else x.reshape(-1, x.shape[-1])
            sampled[name].append(x[::step])
    joined = {name: np.concatenate(parts) for name, parts in sampled.items()}
    errors = []
    for w, x, y in matmuls:
        exact = joined[x].astype(np.float32) @ numpy_helper.to_array(w).astype(np.float32)
        diff = np.linalg.norm(joined[y] - exact) / max(float(np.linalg.norm(exact)), 1e-30)
        errors.append({"weight": w.name, "error": round(float(diff), 6)})
    return sorted(errors, key=lambda e: -e["error"])


def smooth_factors(model, ranges: dict, alpha: float) -> dict:
    """SmoothQuant's per-channel factors ``s_j = max|x_j|^alpha / max|w_j|^(1 - alpha)`` of each
    activation in ``ranges`` (max|w_j| over every MatMul that reads it), for
    :func:`rowwise_matmuls`. Per-row scales spend the int8 range of a row on its largest value;
    base-size encoders have a few channels 20-70x the median (all-mpnet-base-v2's FFN input),
    so the other channels of those rows get a handful of levels. Dividing them out moves that
    range into the weights, which are quantized per column and have it to spare."""
    import numpy as np
    from onnx import numpy_helper

    if alpha <= 0:
        return {}
    inits = {i.name: i for i in model.graph.initializer}
    w_max: dict = {}
    for node in model.graph.node:
        w = _rowwise_weight(node, inits)
        if w is None or node.input[0] not in ranges:
            continue
        top = np.abs(numpy_helper.to_array(w)).max(axis=1)
        x = node.input[0]
        w_max[x] = np.maximum(w_max[x], top) if x in w_max else top
    factors = {}
    for x, wm in w_max.items():
        xm = np.asarray(ranges[x], np.float64)
        if xm.shape != wm.shape:
            continue
        s = np.maximum(xm, 1e-5) ** alpha / np.maximum(wm, 1e-5) ** (1 - alpha)
        factors[x] = np.clip(s, 1e-4, 1e4).astype(np.float32)
    return factors


SPARSE_POOLED_OUTPUT = "max_logits"


def pooled_sparse_head(
    model, keep: set[str] = frozenset(), pair_safe: bool = True, max_hidden: int = 256
) -> str | None:
    """Rewrite ``model`` in place: SPLADE's vocabulary head ``logits = x @ W + b`` (graph output
    ``logits`` [batch, tokens, vocab]) becomes per-row int8, transposed and max-pooled over the
    attention mask in the graph, with output ``max_logits`` [batch, vocab]:

        s   = pair_max(|x|) / 127                 one scale per token row (see pair_safe)
        xq  = QuantizeLinear(x, s, 0, axis=0)     int8, symmetric
        yt  = MatMulIntegerToFloat(Wq^T, xq^T, 1, s, 128, 0, pen)    [vocab, tokens], s * (Wq x)
        max_logits = Transpose(ReduceMax(yt over each text's tokens)) * w_scale + b

    Why: in :func:`rowwise_matmuls`' form the row scale and the bias are two more passes over a
    tokens x vocab array, most of a small SPLADE's time. Transposed, the row scale is the kernel's
    per-column scale and the attention mask its per-column bias (``pen``: 0 or -1e30), and the
    per-term scale and bias come after the max: exact, since ``w_scale > 0`` and kettle's
    ``log1p(ReLU(.))`` after the max is monotonic (kettle.sparse.splade_weights). ``Wq`` is
    per-term symmetric int8 stored as uint8 around 128 (ONNX Runtime has no int8 x uint8
    kernel), so the activations are the signed side: ``pair_safe`` bounds their scale by the
    largest sum of two adjacent |x| (``|q[2j]| + |q[2j+1]| <= 128``), so that AVX2 without VNNI
    (``vpmaddubsw``: 255 x 128 < 32767) cannot saturate. Returns the head's weight name, or None
    (the graph is left as it was) when it has no such head, the head is in ``keep`` or its
    hidden size is odd or past ``max_hidden`` (there the transposed kernel is the slower one:
    QuantScheme.pooled_head_max_hidden).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    outputs = [o.name for o in graph.output]
    inputs = {i.name for i in graph.input}
    if outputs != ["logits"] or "attention_mask" not in inputs:
        return None
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    add = producer.get("logits")
    if add is None or add.op_type != "Add" or len(add.input) != 2:
        return None
    matmul = bias = None
    for y, b in (add.input, add.input[::-1]):
        node, init = producer.get(y), inits.get(b)
        if node is not None and init is not None and len(init.dims) == 1:
            if _rowwise_weight(node, inits) is not None:
                matmul, bias = node, init
    if matmul is None:
        return None
    w = inits[matmul.input[1]]
    k, n = w.dims
    if w.name in keep or k % 2 or k > max_hidden or bias.dims[0] != n:
        return None
    consumers = [node for node in graph.node if matmul.output[0] in node.input]
    if consumers != [add]:
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    if opset < 13:
        return None
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))

    weights = numpy_helper.to_array(w).astype(np.float32)
    w_scale = (np.maximum(np.abs(weights).max(axis=0), 1e-12) / 127).astype(np.float32)
    wq_t = (np.clip(np.round(weights / w_scale), -127, 127).T + 128).astype(np.uint8)  # [n, k]
    p = "sparse_head_"
    consts = {
        p + "w": wq_t,
        p + "w_zp": np.array(128, np.uint8),
        p + "w_scale": w_scale,
        p + "bias": numpy_helper.to_array(bias).astype(np.float32),
        p + "rows": np.array([-1, k], np.int64),
        p + "pairs": np.array([-1, k // 2, 2], np.int64),
        p + "flat": np.array([-1], np.int64),
        p + "vocab": np.array([n], np.int64),
        p + "last": np.array([-1], np.int64),
        p + "tokens": np.array([2], np.int64),
        p + "eps": np.array(1e-12, np.float32),
        p + "qmax": np.array(127.0, np.float32),
        p + "one": np.array(1.0, np.float32),
        p + "zero": np.array(0.0, np.float32),
        p + "x_zp": np.array(0, np.int8),
        p + "masked": np.array(1e30, np.float32),  # (mask - 1) * 1e30
    }
    x = matmul.input[0]
    scale = p + "x_amax" if pair_safe else p + "x_absmax"

    def reduce(op: str, src: str, dst: str, axis: str) -> object:
        if opset >= 18 or op == "ReduceSum":
            return helper.make_node(op, [src, p + axis], [dst], keepdims=0)
        return helper.make_node(op, [src], [dst], keepdims=0, axes=[-1 if axis == "last" else 2])

    make = helper.make_node
    head = [
        make("Reshape", [x, p + "rows"], [p + "x2d"]),
        make("Abs", [p + "x2d"], [p + "x_abs"]),
        reduce("ReduceMax", p + "x_abs", p + "x_absmax", "last"),
        make("Reshape", [p + "x_abs", p + "pairs"], [p + "x_pairs"]),
        reduce("ReduceSum", p + "x_pairs", p + "x_pair_sum", "last"),
        reduce("ReduceMax", p + "x_pair_sum", p + "x_amax", "last"),
        make("Max", [scale, p + "eps"], [p + "x_bound"]),
        make("Div", [p + "x_bound", p + "qmax"], [p + "x_scale"]),
        # per-axis QuantizeLinear wants a zero point of the scale's shape; its type gives int8
        make("Mul", [p + "x_scale", p + "zero"], [p + "x_zeros"]),
        make("Cast", [p + "x_zeros"], [p + "x_zps"], to=TensorProto.INT8),
        make("QuantizeLinear", [p + "x2d", p + "x_scale", p + "x_zps"], [p + "xq"], axis=0),
        make("Transpose", [p + "xq"], [p + "xq_t"], perm=[1, 0]),
        # 0 for a kept token, -1e30 for padding: the kernel adds it to the token's column
        make("Cast", ["attention_mask"], [p + "mask_f"], to=TensorProto.FLOAT),
        make("Sub", [p + "mask_f", p + "one"], [p + "mask_off"]),
        make("Mul", [p + "mask_off", p + "masked"], [p + "pen_2d"]),
        make("Reshape", [p + "pen_2d", p + "flat"], [p + "pen"]),
        make(
            "MatMulIntegerToFloat",
            [p + "w", p + "xq_t", p + "one", p + "x_scale", p + "w_zp", p + "x_zp", p + "pen"],
            [p + "yt"],
            domain="com.microsoft",
        ),
        make("Shape", ["attention_mask"], [p + "batch_tokens"]),
        make("Concat", [p + "vocab", p + "batch_tokens"], [p + "yt_shape"], axis=0),
        make("Reshape", [p + "yt", p + "yt_shape"], [p + "yt_3d"]),
        reduce("ReduceMax", p + "yt_3d", p + "max_t", "tokens"),
        make("Transpose", [p + "max_t"], [p + "max_raw"], perm=[1, 0]),
        make("Mul", [p + "max_raw", p + "w_scale"], [p + "max_scaled"]),
        make("Add", [p + "max_scaled", p + "bias"], [SPARSE_POOLED_OUTPUT]),
    ]
    nodes = []
    for node in graph.node:
        if node is add:
            nodes += head
        elif node is not matmul:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for node in graph.node for i in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(
        kept + [numpy_helper.from_array(v, name) for name, v in consts.items() if name in used]
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(SPARSE_POOLED_OUTPUT, TensorProto.FLOAT, ["batch", n])
    )
    stale = [v for v in graph.value_info if v.name in (matmul.output[0], "logits")]
    for v in stale:
        graph.value_info.remove(v)
    return w.name
