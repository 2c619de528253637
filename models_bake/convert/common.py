"""Pieces every encoder family shares: the safetensors reader, the graph builder, weight lookup
across prefixes, the attention block, masks, rotary embeddings and the model's save.

The attention block keeps the layout ``torch.onnx.export`` gives a Hugging Face encoder (MatMul+Add
projections, Reshape/Transpose per head, Div by sqrt(head_dim), Add of the additive mask, Softmax),
which is the pattern onnxruntime's BERT optimizer fuses into Attention where a family allows it.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish")
MASK_FILL = -10000.0  # additive mask value; -1e4 underflows softmax to exactly 0 in fp32
TWO_GB = 2**31

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


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
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
        return read_safetensors(single)
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        out: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(read_safetensors(model_dir / shard))
        return out
    others = [p.name for p in model_dir.glob("*.bin")] + [p.name for p in model_dir.glob("*.h5")]
    hint = (
        f" (found {', '.join(others)}; only safetensors checkpoints are supported)"
        if others
        else ""
    )
    raise FileNotFoundError(f"{model_dir}: no model.safetensors{hint}")


# ----------------------------------------------------------------------------- graph builder


class Graph:
    """An ONNX graph under construction: nodes, initializers, shared constants."""

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
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(ACTIVATIONS)}")


# ----------------------------------------------------------------------------- weights


class Weights:
    """A state dict whose base-model tensors may carry one of several prefixes (``bert.``,
    ``roberta.``, ...), with LayerNorm parameters as ``weight``/``bias`` or TF's ``gamma``/``beta``."""

    def __init__(
        self,
        tensors: dict[str, np.ndarray],
        probe: str,
        prefixes: tuple[str, ...],
        family: str | None = None,
    ):
        self.t = tensors
        for prefix in prefixes:
            if prefix + probe in tensors:
                self.prefix = prefix
                break
        else:
            sample = ", ".join(sorted(tensors)[:5])
            what = f"not a {family} checkpoint: " if family else "checkpoint has "
            raise ValueError(
                f"{what}no {probe!r} (prefixes tried: "
                f"{', '.join(repr(p) for p in prefixes)}); first keys: {sample}"
            )

    def has(self, name: str, *, base: bool = True) -> bool:
        return ((self.prefix if base else "") + name) in self.t

    def get(self, name: str, *, base: bool = True) -> np.ndarray:
        key = (self.prefix if base else "") + name
        if key not in self.t:
            raise KeyError(f"checkpoint is missing tensor {key!r}")
        return np.asarray(self.t[key], dtype=np.float32)

    def maybe(self, name: str, *, base: bool = True) -> np.ndarray | None:
        return self.get(name, base=base) if self.has(name, base=base) else None

    def ln(self, name: str, *, base: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """A LayerNorm's (gamma, beta), under either naming."""
        if self.has(name + ".weight", base=base):
            return self.get(name + ".weight", base=base), self.get(name + ".bias", base=base)
        return self.get(name + ".gamma", base=base), self.get(name + ".beta", base=base)

    def check_layers(self, layer_prefix: str, n_layers: int) -> None:
        extra = f"{self.prefix}{layer_prefix}{n_layers}."
        if any(k.startswith(extra) for k in self.t):
            raise ValueError(f"checkpoint has more layers than num_hidden_layers={n_layers}")


def linear(g: Graph, x: str, w: np.ndarray, b: np.ndarray | None, name: str) -> str:
    """torch Linear as MatMul (+ Add when it has a bias)."""
    if b is not None:
        return g.linear(x, w, b, name)
    wt = g.init(f"{name}.weight_t", np.ascontiguousarray(w.T))
    return g.op("MatMul", [x, wt], f"{name}/MatMul")


def layer_norm(g: Graph, x: str, gamma: np.ndarray, beta: np.ndarray | None, eps: float, name: str):
    if beta is None:  # LayerNorm(bias=False), as ModernBERT has it
        beta = np.zeros_like(gamma)
    return g.layer_norm(x, gamma, beta, eps, name)


def key_padding_mask(g: Graph) -> str:
    """[B,1,1,S] additive mask, (1 - attention_mask) * MASK_FILL (BERT's export pattern)."""
    m = g.op("Unsqueeze", ["attention_mask", g.const([1], np.int64)], "mask/Unsqueeze_1")
    m = g.op("Unsqueeze", [m, g.const([2], np.int64)], "mask/Unsqueeze_2")
    m = g.op("Cast", [m], "mask/Cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const(1.0), m], "mask/Sub")
    return g.op("Mul", [m, g.const(MASK_FILL)], "mask/Mul")


def seq_range(g: Graph, name: str = "positions") -> str:
    """int64 [S]: 0..S-1 for the batch's sequence length."""
    shape = g.op("Shape", ["input_ids"], f"{name}/Shape")
    seq = g.op("Gather", [shape, g.const(1, np.int64)], f"{name}/Gather_seq", axis=0)
    return g.op("Range", [g.const(0, np.int64), seq, g.const(1, np.int64)], f"{name}/Range")


def split_heads(g: Graph, x: str, n_heads: int, head_dim: int, name: str, perm) -> str:
    x = g.op("Reshape", [x, g.const([0, 0, n_heads, head_dim], np.int64)], f"{name}/Reshape")
    return g.op("Transpose", [x], f"{name}/Transpose", perm=perm)


def attention(
    g: Graph,
    q: str,
    k: str,
    v: str,
    biases: list[str],
    n_heads: int,
    head_dim: int,
    name: str,
    *,
    rotary: tuple[str, str] | None = None,
) -> str:
    """Scaled dot-product attention over [B,S,H] projections; returns the merged context [B,S,H].

    ``biases`` are added to the scores in order (position bias, then the mask); ``rotary`` is a
    (cos, sin) pair of [S, head_dim] tables applied to q and k (rotate-half layout).
    """
    if rotary is None:
        q = split_heads(g, q, n_heads, head_dim, f"{name}/q", [0, 2, 1, 3])
        k = split_heads(g, k, n_heads, head_dim, f"{name}/k", [0, 2, 3, 1])
    else:
        q = split_heads(g, q, n_heads, head_dim, f"{name}/q", [0, 2, 1, 3])
        q = apply_rotary(g, q, rotary, head_dim, f"{name}/q")
        k = split_heads(g, k, n_heads, head_dim, f"{name}/k", [0, 2, 1, 3])
        k = apply_rotary(g, k, rotary, head_dim, f"{name}/k")
        k = g.op("Transpose", [k], f"{name}/k/Transpose_T", perm=[0, 1, 3, 2])
    v = split_heads(g, v, n_heads, head_dim, f"{name}/v", [0, 2, 1, 3])
    s = g.op("MatMul", [q, k], f"{name}/scores/MatMul")
    s = g.op("Div", [s, g.const(math.sqrt(head_dim))], f"{name}/scores/Div")
    for i, bias in enumerate(biases):
        s = g.op("Add", [s, bias], f"{name}/scores/Add_{i}")
    s = g.op("Softmax", [s], f"{name}/scores/Softmax", axis=-1)
    c = g.op("MatMul", [s, v], f"{name}/context/MatMul")
    c = g.op("Transpose", [c], f"{name}/context/Transpose", perm=[0, 2, 1, 3])
    return g.op("Reshape", [c, g.const([0, 0, n_heads * head_dim], np.int64)], f"{name}/merge")


def inv_freq(theta: float, head_dim: int) -> np.ndarray:
    """RoPE inverse frequencies, 1 / theta^(2i/d), rounded once to float32."""
    exponent = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    return (1.0 / (float(theta) ** exponent)).astype(np.float32)


def rotary_tables(g: Graph, positions: str, theta: float, head_dim: int, name: str):
    """(cos, sin) [S, head_dim] for int64 ``positions`` [S], as transformers' RotaryEmbedding."""
    freq = g.init(f"{name}.inv_freq", inv_freq(theta, head_dim)[None, :])
    p = g.op("Cast", [positions], f"{name}/Cast", to=TensorProto.FLOAT)
    p = g.op("Unsqueeze", [p, g.const([1], np.int64)], f"{name}/Unsqueeze")
    f = g.op("Mul", [p, freq], f"{name}/Mul")
    emb = g.op("Concat", [f, f], f"{name}/Concat", axis=-1)
    return g.op("Cos", [emb], f"{name}/Cos"), g.op("Sin", [emb], f"{name}/Sin")


def apply_rotary(g: Graph, x: str, rotary: tuple[str, str], head_dim: int, name: str) -> str:
    """x * cos + rotate_half(x) * sin on [B, heads, S, head_dim]."""
    cos, sin = rotary
    half = g.const([head_dim // 2, head_dim // 2], np.int64)
    x1 = f"{name}/rot/x1"
    x2 = f"{name}/rot/x2"
    g.nodes.append(
        helper.make_node("Split", [x, half], [x1, x2], name=f"{name}/rot/Split", axis=-1)
    )
    neg = g.op("Neg", [x2], f"{name}/rot/Neg")
    rot = g.op("Concat", [neg, x1], f"{name}/rot/Concat", axis=-1)
    a = g.op("Mul", [x, cos], f"{name}/rot/Mul_cos")
    b = g.op("Mul", [rot, sin], f"{name}/rot/Mul_sin")
    return g.op("Add", [a, b], f"{name}/rot/Add")


def finish(
    g: Graph,
    *,
    output: str,
    out_name: str,
    out_dims: list,
    inputs: list[str],
    graph_name: str,
    opset: int = 17,
) -> onnx.ModelProto:
    """The ModelProto with int64 [batch, sequence] inputs and one float output."""
    g.rename(output, out_name)
    ins = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in inputs
    ]
    outs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims)]
    graph = helper.make_graph(g.nodes, graph_name, ins, outs, initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="kettle.models_bake.convert",
        ir_version=helper.find_min_ir_version_for(opsets),
    )


def encoder_model(
    g: Graph,
    output: str,
    *,
    head: str,
    family: str,
    inputs: list[str],
    sizes: dict[str, int],
    opset: int = 17,
    out_name: str = "last_hidden_state",
    out_dims: list | None = None,
    **extra,
) -> tuple[onnx.ModelProto, dict]:
    """``finish`` plus the info dict every family's converter returns (head, family, its sizes,
    output and inputs, and whatever ``extra`` the family records)."""
    dims = out_dims or ["batch", "sequence", sizes["hidden_size"]]
    model = finish(
        g, output=output, out_name=out_name, out_dims=dims, inputs=inputs,
        graph_name=f"kettle_{head}", opset=opset,
    )  # fmt: skip
    info = {"head": head, "family": family, **sizes, "output": out_name, "inputs": list(inputs)}
    return model, info | extra


def convert_family(
    model_dir: Path,
    out_path: Path,
    *,
    build: Callable[[dict, dict[str, np.ndarray], str, int], tuple[onnx.ModelProto, dict]],
    head: str | None = None,
    default_head: str | None = None,
    opset: int = 17,
) -> dict:
    """Read the config, build the family's graph (its ``build_model`` checks the config first) for
    ``head`` (default: the config's first architecture, else ``default_head``), and save it."""
    cfg = read_config(model_dir)
    head = head or (cfg.get("architectures") or [default_head])[0]
    model, info = build(cfg, load_weights(Path(model_dir)), head, opset)
    save(model, out_path)
    return info


def read_config(model_dir: Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json")
    return json.loads(path.read_text())


# A protobuf file cannot pass 2 GB: past this (bge-m3, multilingual-e5-large in fp32) the weights
# go to one external data file beside the graph, ``<name>.data``.
EXTERNAL_DATA_BYTES = TWO_GB - (64 << 20)


def save(model: onnx.ModelProto, out_path: Path) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    nbytes = sum(len(t.raw_data) for t in model.graph.initializer)
    if nbytes < EXTERNAL_DATA_BYTES:
        onnx.checker.check_model(model)
        onnx.save_model(model, str(tmp))
    else:
        data = out_path.with_name(out_path.name + ".data")
        data.unlink(missing_ok=True)
        onnx.save_model(
            model,
            str(tmp),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        onnx.checker.check_model(str(tmp))
    tmp.replace(out_path)


def external_data_files(path: Path) -> list[Path]:
    """The external data files an ONNX file refers to (none for a self-contained one)."""
    model = onnx.load(str(path), load_external_data=False)
    names = {
        e.value
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return [Path(path).parent / n for n in sorted(names)]


def copy_onnx(src: Path, dst: Path) -> list[Path]:
    """Copy an ONNX file and its external data (renamed ``<dst name>.data``); the files written."""
    import shutil

    src, dst = Path(src), Path(dst)
    external = external_data_files(src)
    if not external:
        shutil.copyfile(src, dst)
        return [dst]
    if len(external) > 1:
        raise ValueError(f"{src}: weights in {len(external)} external files; expected one")
    model = onnx.load(str(src), load_external_data=False)
    data = dst.with_name(dst.name + ".data")
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = data.name
    onnx.save_model(model, str(dst))
    shutil.copyfile(external[0], data)
    return [dst, data]


def check_model_type(cfg: dict, module: str) -> None:
    """Refuse a config.json whose ``model_type`` is not one of ``module``'s family record."""
    from models_bake.convert import FAMILIES  # the records; the package imports this module

    name = module.rpartition(".")[2]
    types = tuple(t for t, f in FAMILIES.items() if f.module == name)
    if cfg.get("model_type") not in types:
        raise ValueError(f"model_type {cfg.get('model_type')!r} is not one of {types}")


__all__ = [
    "ACTIVATIONS",
    "MASK_FILL",
    "Graph",
    "Weights",
    "copy_onnx",
    "external_data_files",
    "check_model_type",
    "load_weights",
    "read_safetensors",
    "read_config",
    "save",
]
