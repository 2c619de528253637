"""MPNet checkpoints (``MPNetModel``, e.g. all-mpnet-base-v2) -> ONNX, without PyTorch.

A post-LayerNorm BERT-like encoder with two additions:

- positions start after the padding index 1, as in RoBERTa (``cumsum(mask) * mask + 1``);
- every layer adds a relative position bias to the attention scores: the offset ``j - i`` of key
  and query falls into one of 32 buckets (T5's scheme: exact up to 8, logarithmic to 128) and each
  bucket has a learned bias per head (``encoder.relative_attention_bias``). The bucket of every
  offset the model can see is computed here once, in float32 as transformers does, and stored as a
  [2 * max_positions - 1, heads] table; the graph gathers it with ``j - i``.

There are no token type ids.
"""

from __future__ import annotations

import math

import numpy as np

from models_bake.convert import common
from models_bake.convert.common import Graph, Weights, layer_norm, linear

HEADS = {"MPNetModel": "base", "MPNetForMaskedLM": "base"}
INPUTS = ["input_ids", "attention_mask"]
PADDING_IDX = 1  # transformers hard-codes it in MPNetEmbeddings
NUM_BUCKETS, MAX_DISTANCE = 32, 128  # compute_position_bias' defaults (not the config's)


def relative_position_bucket(relative: np.ndarray) -> np.ndarray:
    """transformers' MPNetEncoder.relative_position_bucket, in float32 like torch."""
    n = -relative.astype(np.int64)
    half = NUM_BUCKETS // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (
            np.log(n.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(MAX_DISTANCE / max_exact))
            * np.float32(half - max_exact)
        )
    large = max_exact + np.where(np.isfinite(scaled), scaled, 0).astype(np.int64)
    large = np.minimum(large, half - 1)
    return ret + np.where(n < max_exact, n, large)


def _check(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported architecture {head!r}; supported: {', '.join(HEADS)}")
    common.check_model_type(cfg, __name__)
    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "relu", "silu"):
        raise ValueError(f"unsupported hidden_act {act!r}")


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    _check(cfg, head)
    w = Weights(tensors, "embeddings.word_embeddings.weight", ("mpnet.", ""))
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = hidden // n_heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    act = cfg.get("hidden_act", "gelu")
    w.check_layers("encoder.layer.", n_layers)
    g = Graph()

    def dense(x: str, name: str) -> str:
        return linear(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), name)

    def ln(x: str, name: str) -> str:
        return layer_norm(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), eps, name)

    word = w.get("embeddings.word_embeddings.weight")
    pos_table = w.get("embeddings.position_embeddings.weight")
    wg = g.op(
        "Gather", [g.init("embeddings.word_embeddings.weight", word), "input_ids"], "emb/word"
    )
    csum = g.op("CumSum", ["attention_mask", g.const(1, np.int64)], "emb/positions/CumSum")
    pid = g.op("Mul", [csum, "attention_mask"], "emb/positions/Mul")
    pid = g.op("Add", [pid, g.const(PADDING_IDX, np.int64)], "emb/positions/Add")
    pg = g.op(
        "Gather", [g.init("embeddings.position_embeddings.weight", pos_table), pid], "emb/pos"
    )
    x = ln(g.op("Add", [wg, pg], "emb/Add_position"), "embeddings.LayerNorm")

    # relative position bias [1, heads, S, S], shared by every layer
    max_pos = int(pos_table.shape[0])
    offsets = np.arange(-(max_pos - 1), max_pos, dtype=np.int64)
    rel_bias = w.get("encoder.relative_attention_bias.weight")  # [buckets, heads]
    table = g.init("encoder.relative_bias_by_offset", rel_bias[relative_position_bucket(offsets)])
    r = common.seq_range(g, "relpos")
    ctx = g.op("Unsqueeze", [r, g.const([1], np.int64)], "relpos/Unsqueeze_ctx")
    mem = g.op("Unsqueeze", [r, g.const([0], np.int64)], "relpos/Unsqueeze_mem")
    rel = g.op("Sub", [mem, ctx], "relpos/Sub")
    rel = g.op("Add", [rel, g.const(max_pos - 1, np.int64)], "relpos/Add_offset")
    bias = g.op("Gather", [table, rel], "relpos/Gather")  # [S, S, heads]
    bias = g.op("Transpose", [bias], "relpos/Transpose", perm=[2, 0, 1])
    bias = g.op("Unsqueeze", [bias, g.const([0], np.int64)], "relpos/Unsqueeze")

    mask = common.key_padding_mask(g)
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        n = f"encoder.layer.{i}"
        q = dense(x, p + "attention.attn.q")
        k = dense(x, p + "attention.attn.k")
        v = dense(x, p + "attention.attn.v")
        c = common.attention(g, q, k, v, [bias, mask], n_heads, head_dim, f"{n}/attn")
        a = g.op("Add", [dense(c, p + "attention.attn.o"), x], f"{n}/attn/Add_residual")
        x = ln(a, p + "attention.LayerNorm")
        h = g.activation(dense(x, p + "intermediate.dense"), act, f"{n}/act")
        h = g.op("Add", [dense(h, p + "output.dense"), x], f"{n}/out/Add_residual")
        x = ln(h, p + "output.LayerNorm")

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
        family="mpnet",
        inputs=INPUTS,
        sizes=sizes,
        opset=opset,
    )
