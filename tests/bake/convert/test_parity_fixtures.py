"""Converted real checkpoints vs references made once with torch (tools/make_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from models_bake.convert import convert

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _encode(tok: Tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(texts), width), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture(scope="module")
def minilm_ref() -> dict:
    return json.loads((FIXTURES / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def splade_ref() -> dict:
    return json.loads((FIXTURES / "splade_tiny_reference.json").read_text())


def test_minilm_matches_sentence_transformers(minilm_dir, minilm_ref, tmp_path):
    info = convert(minilm_dir, tmp_path / "minilm.onnx")
    assert info == {
        "head": "BertModel",
        "hidden_size": 384,
        "num_layers": 6,
        "num_heads": 12,
        "vocab_size": 30522,
        "output": "last_hidden_state",
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
    }
    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()  # the file pads to a fixed 128; we pad per batch ourselves
    tok.enable_truncation(minilm_ref["max_seq_length"])
    texts = minilm_ref["texts"]
    feed = _encode(tok, texts)
    assert feed["attention_mask"].sum(1).tolist() == minilm_ref["token_counts"]

    hidden = _session(tmp_path / "minilm.onnx").run(None, feed)[0]
    m = feed["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    want = np.asarray(minilm_ref["embeddings"], np.float32)
    cos = (pooled * want).sum(1) / np.linalg.norm(want, axis=1)
    bad = {texts[i][:40]: float(c) for i, c in enumerate(cos) if c < 0.9999}
    assert not bad, f"cosine < 0.9999: {bad}"
    assert np.abs(pooled - want).max() < 1e-4


def _splade_vectors(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    act = np.log1p(np.maximum(logits, 0.0)) * mask[..., None]
    return act.max(axis=1)


def test_splade_tiny_matches_transformers(splade_dir, splade_ref, tmp_path):
    info = convert(splade_dir, tmp_path / "splade.onnx")
    assert info["head"] == "BertForMaskedLM"
    assert info["output"] == "logits"
    sess = _session(tmp_path / "splade.onnx")

    tok = Tokenizer.from_file(str(splade_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(512)
    feed = _encode(tok, splade_ref["texts"])
    vecs = _splade_vectors(sess.run(None, feed)[0], feed["attention_mask"])
    assert vecs.shape == (len(splade_ref["texts"]), info["vocab_size"])
    for text, row, ref in zip(splade_ref["texts"], vecs, splade_ref["vectors"], strict=True):
        idx = np.flatnonzero(row > 0)
        assert idx.tolist() == ref["indices"], f"support differs for {text!r}"
        np.testing.assert_allclose(row[idx], ref["values"], atol=1e-4, rtol=0, err_msg=text)

    raw = splade_ref["raw_logits"]
    lo, hi = raw["vocab_slice"]
    ids = np.asarray(raw["input_ids"], np.int64)
    mask = np.asarray(raw["attention_mask"], np.int64)
    assert _encode(tok, raw["texts"])["input_ids"].tolist() == raw["input_ids"]
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    logits = sess.run(None, feed)[0][:, :, lo:hi]
    np.testing.assert_allclose(logits, np.asarray(raw["logits"]), atol=1e-4, rtol=0)
