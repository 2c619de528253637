"""The emitted graph must stay in the pattern onnxruntime's BERT optimizer fuses.

Knob: opt_level=0 (Python fusions only). The default opt_level (1 for model_type="bert")
first runs onnxruntime's own optimizer, whose helper imports torch.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from _convert_ref import (
    HEADS,
    HIDDEN,
    LAYERS,
    VOCAB,
    make_config,
    make_state_dict,
    write_checkpoint,
)
from onnxruntime.transformers import optimizer

from models_bake.convert import convert


@pytest.mark.parametrize(
    ("arch", "act", "gelu_op", "extra_ln"),
    [
        ("BertModel", "gelu", "BiasGelu", 0),
        ("BertModel", "gelu_new", "FastGelu", 0),
        ("BertForMaskedLM", "gelu", "BiasGelu", 1),  # + the MLM transform's gelu and LayerNorm
    ],
)
def test_ort_bert_fusions(tmp_path, arch, act, gelu_op, extra_ln):
    cfg = make_config(arch, act=act)
    sd = make_state_dict(arch, prefix="bert.", seed=11)
    out = tmp_path / "plain.onnx"
    convert(write_checkpoint(tmp_path / "ckpt", cfg, sd), out)

    opt = optimizer.optimize_model(
        str(out), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=0
    )
    stats = opt.get_fused_operator_statistics()
    assert stats["EmbedLayerNormalization"] == 1
    assert stats["Attention"] == LAYERS
    assert stats["SkipLayerNormalization"] == 2 * LAYERS
    assert stats[gelu_op] == LAYERS + extra_ln
    assert stats["LayerNormalization"] == extra_ln
    fused = tmp_path / "fused.onnx"
    opt.save_model_to_file(str(fused))

    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(3, 9)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    a = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    b = ort.InferenceSession(str(fused), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    keep = mask.astype(bool)  # fused Attention may differ on padded *query* rows; compare real ones
    np.testing.assert_allclose(a[keep], b[keep], atol=1e-4, rtol=0)
