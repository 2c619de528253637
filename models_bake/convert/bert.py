"""BERT-family checkpoint (config.json + safetensors) -> ONNX graph, without PyTorch.

Supported: the classic BERT layout (``model_type: bert``, absolute position embeddings,
post-LayerNorm encoder) with one of three heads:

* ``BertModel``                      -> ``last_hidden_state`` [batch, sequence, hidden]
* ``BertForMaskedLM``                -> ``logits`` [batch, sequence, vocab]
* ``BertForSequenceClassification``  -> ``logits`` [batch, num_labels]

Weight names are accepted with or without the ``bert.`` prefix, LayerNorm parameters as
``weight``/``bias`` or the old TF-style ``gamma``/``beta``, and the masked-LM decoder either
explicit (``cls.predictions.decoder.weight``) or tied to the word embeddings.

Out of scope (a clear error is raised): RoBERTa / XLM-R / CamemBERT (positions offset by
``padding_idx + 1``), DistilBERT (no token types, other names), ALBERT / ELECTRA / DeBERTa,
relative position embeddings, ``pytorch_model.bin`` checkpoints.

The graph deliberately mirrors what ``torch.onnx.export`` of a Hugging Face ``BertModel``
produces (MatMul+Add projections, Reshape/Transpose per head, Div by sqrt(head_dim), an
additive mask built as Unsqueeze/Unsqueeze/Cast/Sub/Mul, Softmax, residual Add before
LayerNormalization, position ids via Shape/Gather/Unsqueeze/Slice), so that
``onnxruntime.transformers.optimizer.optimize_model(..., model_type="bert")`` can fuse it into
EmbedLayerNormalization, Attention, SkipLayerNormalization and BiasGelu/FastGelu.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HEADS = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
SUPPORTED_ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish")
MASK_FILL = -10000.0  # additive mask value; -1e4 underflows softmax to exactly 0 in fp32
_TWO_GB = 2**31

# ----------------------------------------------------------------------------- safetensors


_ST_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Minimal safetensors reader (memory-mapped); BF16 is widened to float32."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _ST_DTYPES:
            arr = raw.view(_ST_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        out[name] = arr.reshape(shape)
    return out


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    single = model_dir / "model.safetensors"
    index = model_dir / "model.safetensors.index.json"
    if single.is_file():
        return _read_safetensors(single)
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        out: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(_read_safetensors(model_dir / shard))
        return out
    others = [p.name for p in model_dir.glob("*.bin")] + [p.name for p in model_dir.glob("*.h5")]
    hint = (
        f" (found {', '.join(others)}; only safetensors checkpoints are supported)"
        if others
        else ""
    )
    raise FileNotFoundError(f"{model_dir}: no model.safetensors{hint}")


# ----------------------------------------------------------------------------- weights


class _Weights:
    """Name resolution over a BERT state dict (prefix / gamma-beta variants)."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.t = tensors
        for prefix in ("bert.", ""):
            if prefix + "embeddings.word_embeddings.weight" in tensors:
                self.prefix = prefix
                break
        else:
            sample = ", ".join(sorted(tensors)[:5])
            raise ValueError(
                "not a BERT checkpoint: no 'embeddings.word_embeddings.weight' "
                f"(with or without 'bert.' prefix); first keys: {sample}"
            )

    def has(self, name: str, *, base: bool = True) -> bool:
        return ((self.prefix if base else "") + name) in self.t

    def get(self, name: str, *, base: bool = True) -> np.ndarray:
        key = (self.prefix if base else "") + name
        if key not in self.t:
            raise KeyError(f"checkpoint is missing tensor {key!r}")
        return np.asarray(self.t[key], dtype=np.float32)

    def ln(self, name: str, *, base: bool = True) -> tuple[np.ndarray, np.ndarray]:
        if self.has(name + ".weight", base=base):
            return self.get(name + ".weight", base=base), self.get(name + ".bias", base=base)
        return self.get(name + ".gamma", base=base), self.get(name + ".beta", base=base)


# ----------------------------------------------------------------------------- graph builder


class _Graph:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self.nbytes = 0

    def init(self, name: str, arr: np.ndarray) -> str:
        assert name not in self._names, name
        self._names.add(name)
        arr = np.asarray(arr, order="C")  # (ascontiguousarray would make scalars 1-D)
        self.nbytes += arr.nbytes
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, value, dtype=np.float32) -> str:
        """Shared small constant initializer (scalar or 1-D)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            tag = "_".join(str(v) for v in arr.reshape(-1).tolist()).replace("-", "m")
            name = f"const_{arr.dtype.name}_{tag}" if arr.ndim else f"const_{arr.dtype.name}_s{tag}"
            self._consts[key] = self.init(name, arr)
        return self._consts[key]

    def rename(self, old: str, new: str) -> str:
        for node in self.nodes:
            for seq in (node.input, node.output):
                for j, v in enumerate(seq):
                    if v == old:
                        seq[j] = new
        return new

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        out = name
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def linear(self, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        """torch Linear: y = x @ W.T + b, as MatMul + Add (the fusable form)."""
        wt = self.init(f"{name}.weight_t", np.ascontiguousarray(w.T))
        bn = self.init(f"{name}.bias", b)
        mm = self.op("MatMul", [x, wt], f"{name}/MatMul")
        return self.op("Add", [bn, mm], f"{name}/Add")

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float, name: str):
        g = self.init(f"{name}.weight", gamma)
        b = self.init(f"{name}.bias", beta)
        return self.op("LayerNormalization", [x, g, b], f"{name}/LayerNorm", axis=-1, epsilon=eps)

    def activation(self, x: str, act: str, name: str) -> str:
        if act == "gelu":  # exact erf GELU, torch export pattern: x * (erf(x/sqrt2) + 1) * 0.5
            d = self.op("Div", [x, self.const(math.sqrt(2.0))], f"{name}/Div")
            e = self.op("Erf", [d], f"{name}/Erf")
            a = self.op("Add", [e, self.const(1.0)], f"{name}/Add")
            m = self.op("Mul", [x, a], f"{name}/Mul")
            return self.op("Mul", [m, self.const(0.5)], f"{name}/Mul_half")
        if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
            p = self.op("Pow", [x, self.const(3.0)], f"{name}/Pow")
            m1 = self.op("Mul", [p, self.const(0.044715)], f"{name}/Mul_cube")
            a1 = self.op("Add", [x, m1], f"{name}/Add_inner")
            m2 = self.op("Mul", [a1, self.const(math.sqrt(2.0 / math.pi))], f"{name}/Mul_scale")
            t = self.op("Tanh", [m2], f"{name}/Tanh")
            a2 = self.op("Add", [t, self.const(1.0)], f"{name}/Add_one")
            h = self.op("Mul", [x, self.const(0.5)], f"{name}/Mul_half")
            return self.op("Mul", [h, a2], f"{name}/Mul")
        if act == "relu":
            return self.op("Relu", [x], f"{name}/Relu")
        if act in ("silu", "swish"):
            s = self.op("Sigmoid", [x], f"{name}/Sigmoid")
            return self.op("Mul", [x, s], f"{name}/Mul")
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(SUPPORTED_ACTS)}")


# ----------------------------------------------------------------------------- conversion


def _check_config(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported head/architecture {head!r}; supported: {', '.join(HEADS)}")
    mt = cfg.get("model_type", "bert")
    if mt != "bert":
        raise ValueError(
            f"unsupported model_type {mt!r}: only classic BERT is supported "
            "(RoBERTa/XLM-R position offsets and DistilBERT are out of scope)"
        )
    pet = cfg.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise ValueError(f"unsupported position_embedding_type {pet!r} (only 'absolute')")
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        raise ValueError("decoder / cross-attention BERT configs are not supported")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError("hidden_size is not a multiple of num_attention_heads")
    act = cfg.get("hidden_act", "gelu")
    if act not in SUPPORTED_ACTS:
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(SUPPORTED_ACTS)}")


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    """Build the ONNX ModelProto; returns (model, info dict)."""
    _check_config(cfg, head)
    if opset < 17:
        raise ValueError("opset must be >= 17 (LayerNormalization)")
    w = _Weights(tensors)
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = hidden // n_heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    act = cfg.get("hidden_act", "gelu")

    extra = f"{w.prefix}encoder.layer.{n_layers}."
    if any(k.startswith(extra) for k in tensors):
        raise ValueError(f"checkpoint has more layers than num_hidden_layers={n_layers}")

    g = _Graph()

    def dense(x: str, name: str, base: bool = True) -> str:
        return g.linear(
            x, w.get(name + ".weight", base=base), w.get(name + ".bias", base=base), name
        )

    # --- embeddings: word + token_type, + position, LayerNorm
    word = w.get("embeddings.word_embeddings.weight")
    vocab = word.shape[0]
    pos_table = w.get("embeddings.position_embeddings.weight")
    type_table = w.get("embeddings.token_type_embeddings.weight")
    max_pos = pos_table.shape[0]
    wname = g.init("embeddings.word_embeddings.weight", word)
    pname = g.init("embeddings.position_embeddings.weight", pos_table)
    tname = g.init("embeddings.token_type_embeddings.weight", type_table)
    pos_ids = g.init("embeddings.position_ids", np.arange(max_pos, dtype=np.int64)[None, :])

    wg = g.op("Gather", [wname, "input_ids"], "embeddings/word/Gather")
    tg = g.op("Gather", [tname, "token_type_ids"], "embeddings/token_type/Gather")
    emb = g.op("Add", [wg, tg], "embeddings/Add")
    shape = g.op("Shape", ["input_ids"], "embeddings/Shape")
    seq = g.op("Gather", [shape, g.const(1, np.int64)], "embeddings/Gather_seq", axis=0)
    seq1 = g.op("Unsqueeze", [seq, g.const([0], np.int64)], "embeddings/Unsqueeze_seq")
    pid = g.op(
        "Slice",
        [pos_ids, g.const([0], np.int64), seq1, g.const([1], np.int64), g.const([1], np.int64)],
        "embeddings/Slice_position_ids",
    )
    pg = g.op("Gather", [pname, pid], "embeddings/position/Gather")
    emb = g.op("Add", [emb, pg], "embeddings/Add_position")
    x = g.layer_norm(emb, *w.ln("embeddings.LayerNorm"), eps, "embeddings.LayerNorm")

    # --- extended attention mask [B,1,1,S]: (1 - mask) * MASK_FILL
    m = g.op("Unsqueeze", ["attention_mask", g.const([1], np.int64)], "mask/Unsqueeze_1")
    m = g.op("Unsqueeze", [m, g.const([2], np.int64)], "mask/Unsqueeze_2")
    m = g.op("Cast", [m], "mask/Cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const(1.0), m], "mask/Sub")
    ext_mask = g.op("Mul", [m, g.const(MASK_FILL)], "mask/Mul")

    heads_shape = g.const([0, 0, n_heads, head_dim], np.int64)
    merge_shape = g.const([0, 0, hidden], np.int64)
    scale = g.const(math.sqrt(head_dim))

    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        n = f"encoder.layer.{i}"
        q = dense(x, p + "attention.self.query")
        k = dense(x, p + "attention.self.key")
        v = dense(x, p + "attention.self.value")
        q = g.op("Reshape", [q, heads_shape], f"{n}/q/Reshape")
        q = g.op("Transpose", [q], f"{n}/q/Transpose", perm=[0, 2, 1, 3])
        k = g.op("Reshape", [k, heads_shape], f"{n}/k/Reshape")
        k = g.op("Transpose", [k], f"{n}/k/Transpose", perm=[0, 2, 3, 1])
        v = g.op("Reshape", [v, heads_shape], f"{n}/v/Reshape")
        v = g.op("Transpose", [v], f"{n}/v/Transpose", perm=[0, 2, 1, 3])
        s = g.op("MatMul", [q, k], f"{n}/scores/MatMul")
        s = g.op("Div", [s, scale], f"{n}/scores/Div")
        s = g.op("Add", [s, ext_mask], f"{n}/scores/Add_mask")
        s = g.op("Softmax", [s], f"{n}/scores/Softmax", axis=-1)
        c = g.op("MatMul", [s, v], f"{n}/context/MatMul")
        c = g.op("Transpose", [c], f"{n}/context/Transpose", perm=[0, 2, 1, 3])
        c = g.op("Reshape", [c, merge_shape], f"{n}/context/Reshape")
        a = dense(c, p + "attention.output.dense")
        a = g.op("Add", [a, x], f"{n}/attention/Add_residual")
        x = g.layer_norm(
            a, *w.ln(p + "attention.output.LayerNorm"), eps, p + "attention.output.LayerNorm"
        )
        h = dense(x, p + "intermediate.dense")
        h = g.activation(h, act, f"{n}/intermediate/act")
        h = dense(h, p + "output.dense")
        h = g.op("Add", [h, x], f"{n}/output/Add_residual")
        x = g.layer_norm(h, *w.ln(p + "output.LayerNorm"), eps, p + "output.LayerNorm")

    if head == "BertModel":
        out_name, out_dims = "last_hidden_state", ["batch", "sequence", hidden]
        g.rename(x, out_name)
    elif head == "BertForMaskedLM":
        t = "cls.predictions.transform."
        y = dense(x, t + "dense", base=False)
        y = g.activation(y, act, "cls/transform/act")
        y = g.layer_norm(y, *w.ln(t + "LayerNorm", base=False), eps, t + "LayerNorm")
        if w.has("cls.predictions.decoder.weight", base=False):
            dec = w.get("cls.predictions.decoder.weight", base=False)
        elif cfg.get("tie_word_embeddings", True):
            dec = word
        else:
            raise KeyError("missing cls.predictions.decoder.weight and tie_word_embeddings=false")
        if w.has("cls.predictions.bias", base=False):
            bias = w.get("cls.predictions.bias", base=False)
        else:
            bias = w.get("cls.predictions.decoder.bias", base=False)
        out_name, out_dims = "logits", ["batch", "sequence", int(dec.shape[0])]
        y = g.linear(y, dec, bias, "cls.predictions.decoder")
        g.rename(y, out_name)
    else:  # BertForSequenceClassification
        cls_tok = g.op("Gather", [x, g.const(0, np.int64)], "pooler/Gather_cls", axis=1)
        pool = dense(cls_tok, "pooler.dense")
        pool = g.op("Tanh", [pool], "pooler/Tanh")
        cw = w.get("classifier.weight", base=False)
        cb = w.get("classifier.bias", base=False)
        n_labels = int(cw.shape[0])
        if "num_labels" in cfg and int(cfg["num_labels"]) != n_labels:
            raise ValueError(f"config num_labels={cfg['num_labels']} but classifier has {n_labels}")
        out_name, out_dims = "logits", ["batch", n_labels]
        y = g.linear(pool, cw, cb, "classifier")
        g.rename(y, out_name)

    if g.nbytes >= _TWO_GB - (64 << 20):
        raise ValueError(f"weights are {g.nbytes / 2**30:.2f} GiB; the ONNX file must stay < 2 GB")

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in INPUTS
    ]
    outputs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims)]
    graph = helper.make_graph(g.nodes, f"kettle_{head}", inputs, outputs, initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="kettle.models_bake.convert",
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    info = {
        "head": head,
        "hidden_size": hidden,
        "num_layers": n_layers,
        "num_heads": n_heads,
        "vocab_size": int(vocab),
        "output": out_name,
        "inputs": list(INPUTS),
    }
    return model, info


def convert(model_dir: Path, out_path: Path, *, head: str | None = None, opset: int = 17) -> dict:
    """Convert ``model_dir`` (config.json + model.safetensors) to an ONNX file at ``out_path``.

    ``head`` defaults to ``config["architectures"][0]``. Returns a description dict with keys
    head, hidden_size, num_layers, num_heads, vocab_size, output, inputs.
    """
    model_dir = Path(model_dir)
    out_path = Path(out_path)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json")
    cfg = json.loads(cfg_path.read_text())
    if head is None:
        archs = cfg.get("architectures") or []
        if not archs:
            raise ValueError(f"{cfg_path}: no 'architectures'; pass head= explicitly")
        head = archs[0]
    _check_config(cfg, head)
    tensors = load_weights(model_dir)
    model, info = build_model(cfg, tensors, head, opset)
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save_model(model, tmp)
    tmp.replace(out_path)
    return info
