"""Random BERT checkpoints and an independent numpy forward pass, for the converter tests.

The reference follows the Hugging Face BertModel maths token by token; it shares no code with
models_bake.convert (different layout: plain loops over heads, explicit masked softmax).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

VOCAB, HIDDEN, LAYERS, HEADS, INTER, MAX_POS, TYPES = 100, 32, 2, 4, 64, 40, 2


def make_config(arch: str, *, act: str = "gelu", num_labels: int | None = None, **extra) -> dict:
    cfg = {
        "architectures": [arch],
        "model_type": "bert",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTER,
        "hidden_act": act,
        "max_position_embeddings": MAX_POS,
        "type_vocab_size": TYPES,
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }
    if num_labels is not None:
        cfg["num_labels"] = num_labels
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    cfg.update(extra)
    return cfg


def make_state_dict(
    arch: str,
    *,
    seed: int = 0,
    prefix: str = "",
    gamma_beta: bool = False,
    tied: bool = True,
    decoder_bias_name: str = "cls.predictions.bias",
    num_labels: int = 3,
) -> dict[str, np.ndarray]:
    """HF-style state dict with random weights (names exactly as transformers saves them)."""
    rng = np.random.default_rng(seed)

    def rnd(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(name, sd):
        g, b = ("gamma", "beta") if gamma_beta else ("weight", "bias")
        sd[f"{name}.{g}"] = (1.0 + rnd(HIDDEN, scale=0.1)).astype(np.float32)
        sd[f"{name}.{b}"] = rnd(HIDDEN, scale=0.1)

    def lin(name, n_out, n_in, sd):
        sd[f"{name}.weight"] = rnd(n_out, n_in, scale=1.0 / math.sqrt(n_in))
        sd[f"{name}.bias"] = rnd(n_out, scale=0.1)

    sd: dict[str, np.ndarray] = {}
    p = prefix
    sd[p + "embeddings.word_embeddings.weight"] = rnd(VOCAB, HIDDEN, scale=0.5)
    sd[p + "embeddings.position_embeddings.weight"] = rnd(MAX_POS, HIDDEN, scale=0.5)
    sd[p + "embeddings.token_type_embeddings.weight"] = rnd(TYPES, HIDDEN, scale=0.5)
    sd[p + "embeddings.position_ids"] = np.arange(MAX_POS, dtype=np.int64)[None]
    ln(p + "embeddings.LayerNorm", sd)
    for i in range(LAYERS):
        lp = f"{p}encoder.layer.{i}."
        for n in ("query", "key", "value"):
            lin(lp + "attention.self." + n, HIDDEN, HIDDEN, sd)
        lin(lp + "attention.output.dense", HIDDEN, HIDDEN, sd)
        ln(lp + "attention.output.LayerNorm", sd)
        lin(lp + "intermediate.dense", INTER, HIDDEN, sd)
        lin(lp + "output.dense", HIDDEN, INTER, sd)
        ln(lp + "output.LayerNorm", sd)
    if arch in ("BertModel", "BertForSequenceClassification"):
        lin(p + "pooler.dense", HIDDEN, HIDDEN, sd)
    if arch == "BertForMaskedLM":
        lin("cls.predictions.transform.dense", HIDDEN, HIDDEN, sd)
        ln("cls.predictions.transform.LayerNorm", sd)
        sd[decoder_bias_name] = rnd(VOCAB, scale=0.5)
        if not tied:
            sd["cls.predictions.decoder.weight"] = rnd(VOCAB, HIDDEN, scale=0.5)
    if arch == "BertForSequenceClassification":
        lin("classifier", num_labels, HIDDEN, sd)
    return sd


def write_checkpoint(model_dir: Path, cfg: dict, sd: dict[str, np.ndarray]) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(sd, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    return model_dir


# ----------------------------------------------------------------------------- reference


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _act(x: np.ndarray, name: str) -> np.ndarray:
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise AssertionError(name)


def _get(sd, name, prefix):
    for cand in (prefix + name, name):
        if cand in sd:
            return sd[cand].astype(np.float64)
    raise KeyError(name)


def _ln(x, sd, name, prefix, eps):
    try:
        g, b = _get(sd, name + ".weight", prefix), _get(sd, name + ".bias", prefix)
    except KeyError:
        g, b = _get(sd, name + ".gamma", prefix), _get(sd, name + ".beta", prefix)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def reference_forward(cfg, sd, input_ids, attention_mask, token_type_ids, head):
    """Float64 BERT forward, one sequence and one head at a time; masked keys are dropped."""
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in sd else ""
    eps = cfg["layer_norm_eps"]
    nh = cfg["num_attention_heads"]
    hs = cfg["hidden_size"]
    d = hs // nh
    act = cfg["hidden_act"]

    def lin(x, name):
        return x @ _get(sd, name + ".weight", prefix).T + _get(sd, name + ".bias", prefix)

    outs = []
    for ids, mask, tt in zip(input_ids, attention_mask, token_type_ids, strict=True):
        seq = len(ids)
        x = (
            _get(sd, "embeddings.word_embeddings.weight", prefix)[ids]
            + _get(sd, "embeddings.token_type_embeddings.weight", prefix)[tt]
            + _get(sd, "embeddings.position_embeddings.weight", prefix)[np.arange(seq)]
        )
        x = _ln(x, sd, "embeddings.LayerNorm", prefix, eps)
        keep = np.flatnonzero(mask)
        for i in range(cfg["num_hidden_layers"]):
            lp = f"encoder.layer.{i}."
            q = lin(x, lp + "attention.self.query")
            k = lin(x, lp + "attention.self.key")
            v = lin(x, lp + "attention.self.value")
            ctx = np.zeros((seq, hs))
            for h in range(nh):
                sl = slice(h * d, (h + 1) * d)
                for t in range(seq):
                    s = k[keep, sl] @ q[t, sl] / math.sqrt(d)
                    p = np.exp(s - s.max())
                    p /= p.sum()
                    ctx[t, sl] = p @ v[keep, sl]
            a = lin(ctx, lp + "attention.output.dense")
            x = _ln(a + x, sd, lp + "attention.output.LayerNorm", prefix, eps)
            f = lin(_act(lin(x, lp + "intermediate.dense"), act), lp + "output.dense")
            x = _ln(f + x, sd, lp + "output.LayerNorm", prefix, eps)
        if head == "BertModel":
            outs.append(x)
        elif head == "BertForMaskedLM":
            y = _act(lin(x, "cls.predictions.transform.dense"), act)
            y = _ln(y, sd, "cls.predictions.transform.LayerNorm", prefix, eps)
            if "cls.predictions.decoder.weight" in sd:
                dec = sd["cls.predictions.decoder.weight"].astype(np.float64)
            else:
                dec = _get(sd, "embeddings.word_embeddings.weight", prefix)
            bias_key = (
                "cls.predictions.bias"
                if "cls.predictions.bias" in sd
                else "cls.predictions.decoder.bias"
            )
            outs.append(y @ dec.T + sd[bias_key])
        elif head == "BertForSequenceClassification":
            pooled = np.tanh(lin(x[0], "pooler.dense"))
            outs.append(lin(pooled, "classifier"))
        else:
            raise AssertionError(head)
    return np.stack(outs)
