"""Converter vs an independent numpy BERT on small random checkpoints (no downloads)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _convert_ref import (
    HIDDEN,
    VOCAB,
    make_config,
    make_state_dict,
    reference_forward,
    write_checkpoint,
)

from models_bake.convert import convert

ATOL = 1e-4


def _batch(rng, batch, seq):
    """Random ids with right padding (row 0 unpadded), random token types."""
    ids = rng.integers(1, VOCAB, size=(batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    for b in range(1, batch):
        length = int(rng.integers(1, seq))
        mask[b, length:] = 0
        ids[b, length:] = 0
    types = rng.integers(0, 2, size=(batch, seq)).astype(np.int64) * mask
    return ids, mask, types


def _check(tmp_path, cfg, sd, head, expect_shape):
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, sd)
    out = tmp_path / "model.onnx"
    info = convert(model_dir, out)
    assert info["head"] == head
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert (info["hidden_size"], info["num_layers"], info["num_heads"]) == (HIDDEN, 2, 4)
    assert info["vocab_size"] == VOCAB
    onnx.checker.check_model(onnx.load(out))

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == info["inputs"]
    assert [o.name for o in sess.get_outputs()] == [info["output"]]
    rng = np.random.default_rng(1)
    # Two different (batch, sequence) shapes through the same session.
    for batch, seq in ((3, 7), (2, 12)):
        ids, mask, types = _batch(rng, batch, seq)
        got = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        got = got[0]
        want = reference_forward(cfg, sd, ids, mask, types, head)
        assert got.shape == expect_shape(batch, seq)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    return info


@pytest.mark.parametrize(
    ("prefix", "act"),
    [("", "gelu"), ("bert.", "gelu"), ("", "gelu_new"), ("", "gelu_pytorch_tanh"), ("", "relu")],
)
def test_bert_model(tmp_path, prefix, act):
    cfg = make_config("BertModel", act=act)
    sd = make_state_dict("BertModel", prefix=prefix, seed=len(act) + len(prefix))
    info = _check(tmp_path, cfg, sd, "BertModel", lambda b, s: (b, s, HIDDEN))
    assert info["output"] == "last_hidden_state"


@pytest.mark.parametrize(
    ("tied", "bias_name", "gamma_beta"),
    [
        (True, "cls.predictions.bias", False),
        (True, "cls.predictions.bias", True),  # old TF-style LayerNorm names (like the SPLADE)
        (False, "cls.predictions.decoder.bias", False),
    ],
)
def test_masked_lm(tmp_path, tied, bias_name, gamma_beta):
    cfg = make_config("BertForMaskedLM", tie_word_embeddings=tied)
    sd = make_state_dict(
        "BertForMaskedLM",
        prefix="bert.",
        tied=tied,
        decoder_bias_name=bias_name,
        gamma_beta=gamma_beta,
        seed=3,
    )
    info = _check(tmp_path, cfg, sd, "BertForMaskedLM", lambda b, s: (b, s, VOCAB))
    assert info["output"] == "logits"


def test_masked_lm_untied_differs_from_tied(tmp_path):
    """The explicit decoder weight must be used when present (not the word embeddings)."""
    cfg = make_config("BertForMaskedLM", tie_word_embeddings=False)
    sd = make_state_dict("BertForMaskedLM", prefix="bert.", tied=False, seed=4)
    tied_sd = {k: v for k, v in sd.items() if k != "cls.predictions.decoder.weight"}
    ids, mask, types = _batch(np.random.default_rng(0), 2, 5)
    a = reference_forward(cfg, sd, ids, mask, types, "BertForMaskedLM")
    b = reference_forward(cfg, tied_sd, ids, mask, types, "BertForMaskedLM")
    assert np.abs(a - b).max() > 0.1  # sanity: the two cases are distinguishable
    _check(tmp_path, cfg, sd, "BertForMaskedLM", lambda b, s: (b, s, VOCAB))


@pytest.mark.parametrize("num_labels", [1, 3])
def test_sequence_classification(tmp_path, num_labels):
    cfg = make_config("BertForSequenceClassification", num_labels=num_labels)
    sd = make_state_dict(
        "BertForSequenceClassification", prefix="bert.", num_labels=num_labels, seed=5
    )
    info = _check(tmp_path, cfg, sd, "BertForSequenceClassification", lambda b, s: (b, num_labels))
    assert info["output"] == "logits"


def test_head_override_on_mlm_checkpoint(tmp_path):
    """head='BertModel' on a MaskedLM checkpoint gives the encoder output."""
    cfg = make_config("BertForMaskedLM")
    sd = make_state_dict("BertForMaskedLM", prefix="bert.", seed=6)
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, sd)
    info = convert(model_dir, tmp_path / "enc.onnx", head="BertModel")
    assert info["output"] == "last_hidden_state"
    sess = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    ids, mask, types = _batch(np.random.default_rng(2), 2, 6)
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    want = reference_forward(cfg, sd, ids, mask, types, "BertModel")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_missing_safetensors_is_a_clear_error(tmp_path):
    model_dir = tmp_path / "ckpt"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(make_config("BertModel")))
    (model_dir / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors.*pytorch_model\.bin"):
        convert(model_dir, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert(tmp_path, tmp_path / "x.onnx")


@pytest.mark.parametrize(
    ("arch", "extra", "match"),
    [
        ("RobertaModel", {"model_type": "roberta"}, "architecture"),
        ("BertModel", {"model_type": "roberta"}, "model_type"),
        ("DistilBertModel", {"model_type": "distilbert"}, "architecture"),
        ("BertForTokenClassification", {}, "architecture"),
        ("BertModel", {"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ("BertModel", {"hidden_act": "mish"}, "hidden_act"),
    ],
)
def test_unsupported_configs(tmp_path, arch, extra, match):
    cfg = make_config(arch, **extra)
    sd = make_state_dict("BertModel", seed=7)
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, sd)
    with pytest.raises(ValueError, match=match):
        convert(model_dir, tmp_path / "x.onnx")


def test_not_a_bert_checkpoint(tmp_path):
    cfg = make_config("BertModel")
    sd = make_state_dict("BertModel", seed=8)
    sd = {k.replace("embeddings.", "embed."): v for k, v in sd.items()}
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, sd)
    with pytest.raises(ValueError, match="word_embeddings"):
        convert(model_dir, tmp_path / "x.onnx")


def test_missing_layer_tensor(tmp_path):
    cfg = make_config("BertModel")
    sd = make_state_dict("BertModel", seed=9)
    del sd["encoder.layer.1.attention.self.key.bias"]
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, sd)
    with pytest.raises(KeyError, match=r"encoder\.layer\.1\.attention\.self\.key\.bias"):
        convert(model_dir, tmp_path / "x.onnx")


def test_config_with_fewer_layers_than_checkpoint(tmp_path):
    cfg = make_config("BertModel", num_hidden_layers=1)
    model_dir = write_checkpoint(tmp_path / "ckpt", cfg, make_state_dict("BertModel", seed=10))
    with pytest.raises(ValueError, match="more layers"):
        convert(model_dir, tmp_path / "x.onnx")
