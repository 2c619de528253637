"""Qwen3 decoder checkpoints (``Qwen3Model`` / ``Qwen3ForCausalLM``, e.g. Qwen3-Embedding-0.6B) ->
the ONNX graph of the base model's ``last_hidden_state``, without PyTorch.

As transformers implements it: pre-RMSNorm decoder layers, causal attention with grouped key/value
heads (each key/value head serves ``heads / kv_heads`` query heads), RMSNorm on each head's q and k
before rotary embeddings, a SwiGLU MLP and a final RMSNorm. An embedder pools the last real token
(``--pooling last``): with right padding a token never sees the padding after it, so the batch does
not change the vectors. No KV cache, no sliding window (``use_sliding_window`` is refused).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from models_bake.convert import common
from models_bake.convert.common import MASK_FILL, Graph, Weights, linear

HEADS = {"Qwen3Model": "base", "Qwen3ForCausalLM": "base"}
INPUTS = ["input_ids", "attention_mask"]


def _check(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported architecture {head!r}; supported: {', '.join(HEADS)}")
    common.check_model_type(cfg, __name__)
    if cfg.get("use_sliding_window"):
        raise ValueError("Qwen3 sliding-window attention is not supported")
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if params.get("rope_type", params.get("type", "default")) != "default":
        raise ValueError(f"unsupported rope_type {params.get('rope_type')!r}")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act {cfg.get('hidden_act')!r} (Qwen3 uses silu)")


def _rms_norm(g: Graph, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis (Qwen3RMSNorm)."""
    sq = g.op("Mul", [x, x], f"{name}/Mul_sq")
    var = g.op("ReduceMean", [sq], f"{name}/ReduceMean", axes=[-1], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(eps)], f"{name}/Add_eps")], f"{name}/Sqrt")
    y = g.op("Div", [x, std], f"{name}/Div")
    return g.op("Mul", [y, g.init(f"{name}.weight", weight)], f"{name}/Mul")


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    _check(cfg, head)
    w = Weights(tensors, "embed_tokens.weight", ("model.", ""))
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or hidden // n_heads)
    n_layers = int(cfg["num_hidden_layers"])
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    params = cfg.get("rope_parameters") or {}
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 1000000.0)))
    if n_heads % n_kv:
        raise ValueError(f"num_attention_heads {n_heads} is not a multiple of kv heads {n_kv}")
    w.check_layers("layers.", n_layers)
    g = Graph()

    def dense(x: str, name: str) -> str:
        return linear(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), name)

    word = w.get("embed_tokens.weight")
    x = g.op("Gather", [g.init("embed_tokens.weight", word), "input_ids"], "emb/tok")

    positions = common.seq_range(g, "positions")
    rotary = common.rotary_tables(g, positions, theta, head_dim, "rotary")
    # causal (key after query) + key padding, [B,1,S,S]
    i = g.op("Unsqueeze", [positions, g.const([1], np.int64)], "causal/Unsqueeze_i")
    j = g.op("Unsqueeze", [positions, g.const([0], np.int64)], "causal/Unsqueeze_j")
    future = g.op("Cast", [g.op("Greater", [j, i], "causal/Greater")], "causal/Cast",
                  to=TensorProto.FLOAT)  # fmt: skip
    future = g.op("Mul", [future, g.const(MASK_FILL)], "causal/Mul")
    mask = g.op("Add", [common.key_padding_mask(g), future], "causal/Add_mask")

    def heads(t: str, n: int, norm: np.ndarray | None, name: str) -> str:
        """[B,S,n*hd] -> per-head RMSNorm -> repeated to n_heads -> [B,S,n_heads*hd]."""
        t = g.op("Reshape", [t, g.const([0, 0, n, head_dim], np.int64)], f"{name}/Reshape")
        if norm is not None:
            t = _rms_norm(g, t, norm, eps, f"{name}/norm")
        if n != n_heads:
            t = g.op("Unsqueeze", [t, g.const([3], np.int64)], f"{name}/Unsqueeze_rep")
            shape = g.op("Shape", [t], f"{name}/Shape")
            lead = g.op("Slice", [shape, g.const([0], np.int64), g.const([2], np.int64)],
                        f"{name}/Slice")  # fmt: skip
            target = g.op("Concat", [lead, g.const([n, n_heads // n, head_dim], np.int64)],
                          f"{name}/Concat", axis=0)  # fmt: skip
            t = g.op("Expand", [t, target], f"{name}/Expand")
        return g.op("Reshape", [t, g.const([0, 0, n_heads * head_dim], np.int64)], f"{name}/Merge")

    for layer in range(n_layers):
        p = f"layers.{layer}."
        n = f"layers.{layer}"
        h = _rms_norm(g, x, w.get(p + "input_layernorm.weight"), eps, f"{n}/input_layernorm")
        q = heads(dense(h, p + "self_attn.q_proj"), n_heads, w.get(p + "self_attn.q_norm.weight"),
                  f"{n}/q_heads")  # fmt: skip
        k = heads(dense(h, p + "self_attn.k_proj"), n_kv, w.get(p + "self_attn.k_norm.weight"),
                  f"{n}/k_heads")  # fmt: skip
        v = heads(dense(h, p + "self_attn.v_proj"), n_kv, None, f"{n}/v_heads")
        c = common.attention(g, q, k, v, [mask], n_heads, head_dim, f"{n}/attn", rotary=rotary)
        x = g.op("Add", [x, dense(c, p + "self_attn.o_proj")], f"{n}/attn/Add_residual")
        h = _rms_norm(g, x, w.get(p + "post_attention_layernorm.weight"), eps,
                      f"{n}/post_attention_layernorm")  # fmt: skip
        gated = g.activation(dense(h, p + "mlp.gate_proj"), "silu", f"{n}/mlp/act")
        h = g.op("Mul", [gated, dense(h, p + "mlp.up_proj")], f"{n}/mlp/Mul_up")
        x = g.op("Add", [x, dense(h, p + "mlp.down_proj")], f"{n}/mlp/Add_residual")
    x = _rms_norm(g, x, w.get("norm.weight"), eps, "norm")

    sizes = {
        "hidden_size": hidden,
        "num_layers": n_layers,
        "num_heads": n_heads,
        "num_kv_heads": n_kv,
        "vocab_size": int(word.shape[0]),
    }
    return common.encoder_model(
        g,
        x,
        head=head,
        family="qwen3",
        inputs=INPUTS,
        sizes=sizes,
        opset=opset,
    )
