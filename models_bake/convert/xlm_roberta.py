"""XLM-RoBERTa (and RoBERTa) checkpoints -> ONNX, without PyTorch.

* ``XLMRobertaModel`` / ``RobertaModel``                      -> ``last_hidden_state``
* ``XLMRobertaForSequenceClassification`` / ``Roberta...``    -> ``logits`` [batch, num_labels]

The encoder is BERT's (post-LayerNorm), with two differences that matter:

- positions start after the padding index: ``cumsum(mask) * mask + padding_idx``, so the first
  real token sits at ``padding_idx + 1`` (2 for XLM-R). transformers builds the mask from
  ``input_ids != pad_token_id``; the graph takes it from ``attention_mask``, which is the same for
  right-padded batches and does not depend on which id the runtime pads with;
- RoBERTa tokenizers return no token type ids, so the graph has no ``token_type_ids`` input and adds
  the type embedding's row 0 to every token, as transformers does when none are given.

The classification head is RoBERTa's: ``<s>`` -> dense -> tanh -> out_proj.
"""

from __future__ import annotations

import numpy as np

from models_bake.convert import common
from models_bake.convert.common import Graph, Weights, layer_norm, linear

HEADS = {
    "XLMRobertaModel": "base",
    "RobertaModel": "base",
    "XLMRobertaForSequenceClassification": "classification",
    "RobertaForSequenceClassification": "classification",
    "XLMRobertaForMaskedLM": "base",  # the encoder of an MLM checkpoint (dense use)
    "RobertaForMaskedLM": "base",
}
INPUTS = ["input_ids", "attention_mask"]
ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu")


def _check(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported architecture {head!r}; supported: {', '.join(HEADS)}")
    common.check_model_type(cfg, __name__)
    pet = cfg.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise ValueError(f"unsupported position_embedding_type {pet!r} (only 'absolute')")
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        raise ValueError("decoder / cross-attention configs are not supported")
    if cfg.get("hidden_act", "gelu") not in ACTS:
        raise ValueError(f"unsupported hidden_act {cfg.get('hidden_act')!r}; supported: {ACTS}")


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    _check(cfg, head)
    w = Weights(tensors, "embeddings.word_embeddings.weight", ("roberta.", "xlm_roberta.", ""))
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = hidden // n_heads
    eps = float(cfg.get("layer_norm_eps", 1e-5))
    act = cfg.get("hidden_act", "gelu")
    pad = int(cfg.get("pad_token_id", 1))
    w.check_layers("encoder.layer.", n_layers)
    g = Graph()

    def dense(x: str, name: str, base: bool = True) -> str:
        return linear(
            g, x, w.get(name + ".weight", base=base), w.maybe(name + ".bias", base=base), name
        )

    def ln(x: str, name: str) -> str:
        return layer_norm(g, x, w.get(name + ".weight"), w.maybe(name + ".bias"), eps, name)

    word = w.get("embeddings.word_embeddings.weight")
    pos_table = w.get("embeddings.position_embeddings.weight")
    wg = g.op(
        "Gather", [g.init("embeddings.word_embeddings.weight", word), "input_ids"], "emb/word"
    )
    if w.has("embeddings.token_type_embeddings.weight"):
        row0 = w.get("embeddings.token_type_embeddings.weight")[0]
        wg = g.op("Add", [wg, g.init("embeddings.token_type_row0", row0)], "emb/Add_type")
    # positions: cumsum(mask) * mask + padding_idx (first real token at padding_idx + 1)
    csum = g.op("CumSum", ["attention_mask", g.const(1, np.int64)], "emb/positions/CumSum")
    pid = g.op("Mul", [csum, "attention_mask"], "emb/positions/Mul")
    pid = g.op("Add", [pid, g.const(pad, np.int64)], "emb/positions/Add")
    pg = g.op(
        "Gather", [g.init("embeddings.position_embeddings.weight", pos_table), pid], "emb/pos"
    )
    x = ln(g.op("Add", [wg, pg], "emb/Add_position"), "embeddings.LayerNorm")

    mask = common.key_padding_mask(g)
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        n = f"encoder.layer.{i}"
        q = dense(x, p + "attention.self.query")
        k = dense(x, p + "attention.self.key")
        v = dense(x, p + "attention.self.value")
        c = common.attention(g, q, k, v, [mask], n_heads, head_dim, f"{n}/attn")
        a = g.op("Add", [dense(c, p + "attention.output.dense"), x], f"{n}/attn/Add_residual")
        x = ln(a, p + "attention.output.LayerNorm")
        h = g.activation(dense(x, p + "intermediate.dense"), act, f"{n}/act")
        h = g.op("Add", [dense(h, p + "output.dense"), x], f"{n}/out/Add_residual")
        x = ln(h, p + "output.LayerNorm")

    if HEADS[head] == "base":
        out, out_name, dims = x, "last_hidden_state", ["batch", "sequence", hidden]
    else:
        cls = g.op("Gather", [x, g.const(0, np.int64)], "head/Gather_cls", axis=1)
        y = g.op("Tanh", [dense(cls, "classifier.dense", base=False)], "head/Tanh")
        out = dense(y, "classifier.out_proj", base=False)
        n_labels = int(w.get("classifier.out_proj.weight", base=False).shape[0])
        out_name, dims = "logits", ["batch", n_labels]
    sizes = {
        "hidden_size": hidden,
        "num_layers": n_layers,
        "num_heads": n_heads,
        "vocab_size": int(word.shape[0]),
    }
    return common.encoder_model(
        g,
        out,
        head=head,
        family="xlm-roberta",
        inputs=INPUTS,
        sizes=sizes,
        opset=opset,
        out_name=out_name,
        out_dims=dims,
    )
