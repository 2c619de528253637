"""NomicBERT checkpoints (``NomicBertModel``, nomic-embed-text v1 / v1.5) -> ONNX, without PyTorch.

As transformers implements it (models/nomic_bert): a post-LayerNorm BERT without position
embeddings, rotary embeddings on q and k (rotate-half layout, base ``rope_theta``), bias-free
projections and a SwiGLU MLP (``down(silu(gate(x)) * up(x))``); token type embeddings stay.

Both weight layouts load: transformers' own names (``layers.N.self_attn.q_proj``, ``mlp.gate_proj``
...) and the original Nomic ones that the hub checkpoints and transformers' save use
(``encoder.layers.N.attn.Wqkv``, ``mlp.fc11`` = up, ``mlp.fc12`` = gate, ``mlp.fc2``, ``norm1``,
``norm2``, ``emb_ln``). Both config formats too: ``hidden_size``/``rope_parameters`` or Nomic's
``n_embd``/``n_head``/``n_layer``/``n_inner``/``rotary_emb_base``/``layer_norm_epsilon``.
"""

from __future__ import annotations

import numpy as np

from models_bake.convert import common
from models_bake.convert.common import Graph, Weights, layer_norm, linear

HEADS = {"NomicBertModel": "base", "NomicBertForMaskedLM": "base"}
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
_ALIASES = {  # transformers' name <- Nomic's original config key
    "hidden_size": "n_embd",
    "num_attention_heads": "n_head",
    "num_hidden_layers": "n_layer",
    "intermediate_size": "n_inner",
    "layer_norm_eps": "layer_norm_epsilon",
    "max_position_embeddings": "n_positions",
}


def normalized_config(cfg: dict) -> dict:
    """The config in transformers' names, whichever format it came in."""
    out = dict(cfg)
    for new, old in _ALIASES.items():
        if new not in out and old in out:
            out[new] = out[old]
    params = out.get("rope_parameters") or {}
    if params.get("rope_type", "default") != "default":
        raise ValueError(f"unsupported rope_type {params['rope_type']!r}")
    if out.get("rotary_scaling_factor"):
        raise ValueError("rotary_scaling_factor (dynamic NTK rotary) is not supported")
    if float(out.get("rotary_emb_fraction", 1.0)) != 1.0:
        raise ValueError("rotary_emb_fraction < 1 is not supported")
    if out.get("rotary_emb_interleaved"):
        raise ValueError("interleaved rotary embeddings are not supported")
    if out.get("prenorm") or out.get("parallel_block") or out.get("use_rms_norm"):
        raise ValueError("prenorm / parallel_block / RMSNorm NomicBERT variants are not supported")
    out["rope_theta"] = float(params.get("rope_theta", out.get("rotary_emb_base", 1000.0)))
    act = out.get("hidden_act") or out.get("activation_function", "silu")
    if act not in ("silu", "swiglu", "swish"):
        raise ValueError(f"unsupported activation {act!r} (NomicBERT's MLP is SwiGLU)")
    return out


def _check(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported architecture {head!r}; supported: {', '.join(HEADS)}")
    common.check_model_type(cfg, __name__)
    normalized_config(cfg)


class _Names:
    """Per-layer tensor names in whichever layout the checkpoint uses."""

    def __init__(self, w: Weights):
        self.original = w.has("encoder.layers.0.attn.Wqkv.weight")
        self.layers = "encoder.layers." if self.original else "layers."
        self.emb_ln = "emb_ln" if self.original else "embeddings.LayerNorm"


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    _check(cfg, head)
    cfg = normalized_config(cfg)
    w = Weights(tensors, "embeddings.word_embeddings.weight", ("nomic_bert.", "bert.", ""))
    names = _Names(w)
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = int(cfg.get("head_dim") or hidden // n_heads)
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    w.check_layers(names.layers, n_layers)
    g = Graph()

    def dense(x: str, name: str) -> str:
        return linear(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), name)

    def ln(x: str, name: str) -> str:
        return layer_norm(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), eps, name)

    word = w.get("embeddings.word_embeddings.weight")
    x = g.op("Gather", [g.init("embeddings.word_embeddings.weight", word), "input_ids"], "emb/word")
    types = g.init("embeddings.token_type_embeddings.weight",
                   w.get("embeddings.token_type_embeddings.weight"))  # fmt: skip
    x = g.op("Add", [x, g.op("Gather", [types, "token_type_ids"], "emb/type")], "emb/Add_type")
    x = ln(x, names.emb_ln)

    positions = common.seq_range(g, "positions")
    rotary = common.rotary_tables(g, positions, cfg["rope_theta"], head_dim, "rotary")
    mask = common.key_padding_mask(g)
    width = n_heads * head_dim
    for i in range(n_layers):
        p = f"{names.layers}{i}."
        n = f"layers.{i}"
        if names.original:
            wqkv = w.get(p + "attn.Wqkv.weight")
            bqkv = w.maybe(p + "attn.Wqkv.bias")
            q, k, v = (
                linear(
                    g,
                    x,
                    wqkv[j * width : (j + 1) * width],
                    None if bqkv is None else bqkv[j * width : (j + 1) * width],
                    f"{p}attn.{t}",
                )  # fmt: skip
                for j, t in enumerate("qkv")
            )
            o, up, gate, down = "attn.out_proj", "mlp.fc11", "mlp.fc12", "mlp.fc2"
            norm1, norm2 = "norm1", "norm2"
        else:
            q, k, v = (dense(x, f"{p}self_attn.{t}_proj") for t in "qkv")
            o, up, gate, down = "self_attn.o_proj", "mlp.up_proj", "mlp.gate_proj", "mlp.down_proj"
            norm1, norm2 = "post_attention_layernorm", "post_mlp_layernorm"
        c = common.attention(g, q, k, v, [mask], n_heads, head_dim, f"{n}/attn", rotary=rotary)
        x = ln(g.op("Add", [x, dense(c, p + o)], f"{n}/attn/Add_residual"), p + norm1)
        gated = g.activation(dense(x, p + gate), "silu", f"{n}/mlp/act")
        h = g.op("Mul", [gated, dense(x, p + up)], f"{n}/mlp/Mul_up")
        x = ln(g.op("Add", [x, dense(h, p + down)], f"{n}/mlp/Add_residual"), p + norm2)

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
        family="nomic_bert",
        inputs=INPUTS,
        sizes=sizes,
        opset=opset,
        weight_layout="nomic" if names.original else "transformers",
    )
