"""ModernBERT checkpoints (``ModernBertModel``, e.g. gte-modernbert-base) -> ONNX, without PyTorch.

A pre-LayerNorm encoder, as transformers implements it:

- no position embeddings and no token types: rotary embeddings on q and k, with one base for the
  global layers and another for the local ones;
- layers alternate global attention and sliding-window local attention, where a token sees only
  keys within ``local_attention // 2`` positions of itself (``|i - j| <= window``); which layer
  is which comes from ``layer_types`` (transformers >= 5) or ``global_attn_every_n_layers``
  (the configs saved before it: layer i is global when ``i % n == 0``);
- a fused Wqkv projection and a GeGLU MLP (``Wi`` gives input and gate; ``act(input) * gate``);
- layer 0 has no attention norm; LayerNorms may be bias-free; a final norm closes the encoder.

The rotary tables are computed in the graph from the batch's positions (no 8192-row tables in the
file).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from models_bake.convert import common
from models_bake.convert.common import MASK_FILL, Graph, Weights, layer_norm, linear

HEADS = {"ModernBertModel": "base", "ModernBertForMaskedLM": "base"}
INPUTS = ["input_ids", "attention_mask"]
ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "relu")


def layer_types(cfg: dict) -> list[str]:
    """ "full_attention" / "sliding_attention" per layer, from either config format."""
    n_layers = int(cfg["num_hidden_layers"])
    types = cfg.get("layer_types")
    if types:
        if len(types) != n_layers:
            raise ValueError(f"layer_types has {len(types)} entries for {n_layers} layers")
        unknown = set(types) - {"full_attention", "sliding_attention"}
        if unknown:
            raise ValueError(f"unsupported layer_types {sorted(unknown)}")
        return list(types)
    every = int(cfg.get("global_attn_every_n_layers", 3))
    return ["sliding_attention" if i % every else "full_attention" for i in range(n_layers)]


def rope_thetas(cfg: dict) -> dict[str, float]:
    """The rotary base of each layer type, from ``rope_parameters`` or the older flat keys."""
    params = cfg.get("rope_parameters") or {}
    thetas = {
        "full_attention": float(cfg.get("global_rope_theta", 160000.0)),
        "sliding_attention": float(cfg.get("local_rope_theta", 10000.0)),
    }
    for kind in thetas:
        p = params.get(kind) or {}
        if p.get("rope_type", "default") != "default":
            raise ValueError(f"unsupported rope_type {p['rope_type']!r} for {kind} layers")
        if "rope_theta" in p:
            thetas[kind] = float(p["rope_theta"])
    if cfg.get("rope_scaling"):
        raise ValueError("rope_scaling is not supported")
    return thetas


def _check(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported architecture {head!r}; supported: {', '.join(HEADS)}")
    common.check_model_type(cfg, __name__)
    act = cfg.get("hidden_activation", "gelu")
    if act not in ACTS:
        raise ValueError(f"unsupported hidden_activation {act!r}; supported: {ACTS}")
    layer_types(cfg)
    rope_thetas(cfg)


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    _check(cfg, head)
    w = Weights(tensors, "embeddings.tok_embeddings.weight", ("model.", ""))
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = hidden // n_heads
    eps = float(cfg.get("norm_eps", 1e-5))
    act = cfg.get("hidden_activation", "gelu")
    window = int(cfg.get("local_attention", 128)) // 2
    types = layer_types(cfg)
    thetas = rope_thetas(cfg)
    w.check_layers("layers.", n_layers)
    g = Graph()

    def dense(x: str, name: str) -> str:
        return linear(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), name)

    def ln(x: str, name: str) -> str:
        return layer_norm(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), eps, name)

    word = w.get("embeddings.tok_embeddings.weight")
    x = g.op("Gather", [g.init("embeddings.tok_embeddings.weight", word), "input_ids"], "emb/tok")
    x = ln(x, "embeddings.norm")

    positions = common.seq_range(g, "positions")
    rotary = {
        kind: common.rotary_tables(g, positions, thetas[kind], head_dim, f"rotary.{kind}")
        for kind in sorted(set(types))
    }
    key_mask = common.key_padding_mask(g)
    masks = {"full_attention": key_mask}
    if "sliding_attention" in types:  # |i - j| <= window, and the key is not padding
        ctx = g.op("Unsqueeze", [positions, g.const([1], np.int64)], "window/Unsqueeze_i")
        mem = g.op("Unsqueeze", [positions, g.const([0], np.int64)], "window/Unsqueeze_j")
        dist = g.op("Abs", [g.op("Sub", [mem, ctx], "window/Sub")], "window/Abs")
        far = g.op("Greater", [dist, g.const(window, np.int64)], "window/Greater")
        far = g.op("Cast", [far], "window/Cast", to=TensorProto.FLOAT)
        far = g.op("Mul", [far, g.const(MASK_FILL)], "window/Mul")
        masks["sliding_attention"] = g.op("Add", [key_mask, far], "window/Add_mask")

    split = g.const([hidden, hidden, hidden], np.int64)
    inter = int(w.get("layers.0.mlp.Wo.weight").shape[1])
    for i in range(n_layers):
        p = f"layers.{i}."
        n = f"layers.{i}"
        h = ln(x, p + "attn_norm") if w.has(p + "attn_norm.weight") else x
        qkv = dense(h, p + "attn.Wqkv")
        q, k, v = (f"{n}/attn/{t}" for t in "qkv")
        g.nodes.append(
            helper.make_node("Split", [qkv, split], [q, k, v], name=f"{n}/attn/Split", axis=-1)
        )
        kind = types[i]
        c = common.attention(
            g, q, k, v, [masks[kind]], n_heads, head_dim, f"{n}/attn", rotary=rotary[kind]
        )
        x = g.op("Add", [x, dense(c, p + "attn.Wo")], f"{n}/attn/Add_residual")
        h = dense(ln(x, p + "mlp_norm"), p + "mlp.Wi")
        a, gate = f"{n}/mlp/input", f"{n}/mlp/gate"
        g.nodes.append(
            helper.make_node(
                "Split",
                [h, g.const([inter, inter], np.int64)],
                [a, gate],
                name=f"{n}/mlp/Split",
                axis=-1,
            )  # fmt: skip
        )
        a = g.op("Mul", [g.activation(a, act, f"{n}/mlp/act"), gate], f"{n}/mlp/Mul_gate")
        x = g.op("Add", [x, dense(a, p + "mlp.Wo")], f"{n}/mlp/Add_residual")
    x = ln(x, "final_norm")

    sizes = {
        "hidden_size": hidden,
        "num_layers": n_layers,
        "num_heads": n_heads,
        "vocab_size": int(word.shape[0]),
    }
    return common.encoder_model(
        g,
        x,
        head=head,
        family="modernbert",
        inputs=INPUTS,
        sizes=sizes,
        opset=opset,
        layer_types=types,
        local_window=window,
    )
