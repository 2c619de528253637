"""The tiny random models of tests/fixtures/<arch>-tiny (made by tools/make_arch_fixtures.py with
transformers on torch) and helpers to run converted graphs on their recorded token ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ARCHS = ["xlm-roberta-tiny", "mpnet-tiny", "modernbert-tiny", "nomic-bert-tiny", "qwen3-tiny"]
RERANKER = "xlm-roberta-reranker-tiny"


def reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.reference.json").read_text())


def session(path: Path, optimize: bool = True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def padded(ids: list[list[int]], pad: int = 0) -> dict[str, np.ndarray]:
    """A right-padded batch; pad ids deliberately differ from the models' own pad token."""
    width = max(len(x) for x in ids)
    arr = np.full((len(ids), width), pad, np.int64)
    mask = np.zeros_like(arr)
    for i, x in enumerate(ids):
        arr[i, : len(x)], mask[i, : len(x)] = x, 1
    return {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)}


def run(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> np.ndarray:
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: feed[n] for n in names})[0]


def max_hidden_delta(sess: ort.InferenceSession, ref: dict, pad: int = 0) -> float:
    """Largest |ours - transformers| over the real tokens of the recorded padded batch."""
    ids = ref["input_ids"]
    out = run(sess, padded(ids, pad))
    return max(
        float(np.abs(out[i, : len(x)] - np.asarray(h, np.float32)).max())
        for i, (x, h) in enumerate(zip(ids, ref["hidden"], strict=True))
    )
