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

import math
from pathlib import Path

import numpy as np
from onnx import TensorProto

from models_bake.convert import common
from models_bake.convert.common import ACTIVATIONS, MASK_FILL, Graph, Weights

HEADS = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]

# ----------------------------------------------------------------------------- conversion


def _check_config(cfg: dict, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unsupported head/architecture {head!r}; supported: {', '.join(HEADS)}")
    mt = cfg.get("model_type", "bert")
    if mt != "bert":  # convert_checkpoint picks families by model_type; this guards direct calls
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
    if act not in ACTIVATIONS:
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(ACTIVATIONS)}")


def build_model(cfg: dict, tensors: dict[str, np.ndarray], head: str, opset: int = 17):
    """Build the ONNX ModelProto; returns (model, info dict)."""
    _check_config(cfg, head)
    if opset < 17:
        raise ValueError("opset must be >= 17 (LayerNormalization)")
    w = Weights(tensors, "embeddings.word_embeddings.weight", ("bert.", ""), family="BERT")
    hidden = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    head_dim = hidden // n_heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    act = cfg.get("hidden_act", "gelu")

    extra = f"{w.prefix}encoder.layer.{n_layers}."
    if any(k.startswith(extra) for k in tensors):
        raise ValueError(f"checkpoint has more layers than num_hidden_layers={n_layers}")

    g = Graph()

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

    model = common.finish(
        g, output=out_name, out_name=out_name, out_dims=out_dims, inputs=INPUTS,
        graph_name=f"kettle_{head}", opset=opset,
    )  # fmt: skip
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
    return common.convert_family(
        model_dir, out_path, build=build_model, head=head, default_head="BertModel", opset=opset,
    )  # fmt: skip
