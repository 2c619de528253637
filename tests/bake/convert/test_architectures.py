"""XLM-R, MPNet, ModernBERT and NomicBERT converters against transformers (recorded references)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _arch_fixtures import ARCHS, FIXTURES, RERANKER, max_hidden_delta, padded, reference, run
from _arch_fixtures import session as make_session
from safetensors.numpy import load_file, save_file

from models_bake.convert import (
    SUPPORTED_ARCHITECTURES,
    UnsupportedArchitectureError,
    convert_checkpoint,
)
from models_bake.convert.mpnet import relative_position_bucket
from models_bake.quantize import fuse_transformer

ATOL = 1e-4


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("arch")
    paths = {}
    for name in [*ARCHS, RERANKER]:
        kind = "rerank" if name == RERANKER else "dense"
        info = convert_checkpoint(FIXTURES / name, out / f"{name}.onnx", kind)
        paths[name] = (out / f"{name}.onnx", info)
    return paths


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("optimize", [False, True])
def test_hidden_states_match_transformers(converted, name, optimize):
    """Padded batch, one text cut at max length: every real token within 1e-4."""
    ref = reference(name)
    assert max(len(x) for x in ref["input_ids"]) == ref["max_length"]  # one is truncated
    assert len({len(x) for x in ref["input_ids"]}) > 3  # and the batch is padded
    sess = make_session(converted[name][0], optimize=optimize)
    assert max_hidden_delta(sess, ref) <= ATOL
    assert max_hidden_delta(sess, ref, pad=7) <= ATOL  # the pad id never leaks in


def test_inputs_follow_the_family(converted):
    inputs = {n: converted[n][1]["inputs"] for n in ARCHS}
    assert inputs["nomic-bert-tiny"] == ["input_ids", "attention_mask", "token_type_ids"]
    for name in ("xlm-roberta-tiny", "mpnet-tiny", "modernbert-tiny", "qwen3-tiny"):
        assert inputs[name] == ["input_ids", "attention_mask"]


def test_modernbert_past_the_local_window(converted):
    """60 tokens against a window of +-4: the sliding layers must see only their window."""
    ref = reference("modernbert-tiny")["long"]
    info = converted["modernbert-tiny"][1]
    assert info["local_window"] == 4 and "sliding_attention" in info["layer_types"]
    assert max(len(x) for x in ref["input_ids"]) > 8 * info["local_window"]
    assert max_hidden_delta(make_session(converted["modernbert-tiny"][0]), ref) <= ATOL


def test_modernbert_window_is_load_bearing(tmp_path):
    """With a window wider than the text the long reference no longer matches: the test can fail."""
    folder = tmp_path / "wide"
    shutil.copytree(FIXTURES / "modernbert-tiny", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["local_attention"] = 1024
    (folder / "config.json").write_text(json.dumps(cfg))
    convert_checkpoint(folder, tmp_path / "wide.onnx")
    ref = reference("modernbert-tiny")["long"]
    assert max_hidden_delta(make_session(tmp_path / "wide.onnx"), ref) > 1e-2


def test_modernbert_pre_v5_config(tmp_path):
    """Configs saved before transformers 5 name no layer_types / rope_parameters."""
    folder = tmp_path / "old"
    shutil.copytree(FIXTURES / "modernbert-tiny", folder)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["layer_types"], cfg["rope_parameters"]
    assert cfg["global_attn_every_n_layers"] == 2
    cfg |= {"global_rope_theta": 160000.0, "local_rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    info = convert_checkpoint(folder, tmp_path / "old.onnx")
    assert info["layer_types"] == ["full_attention", "sliding_attention", "full_attention"]
    ref = reference("modernbert-tiny")
    assert max_hidden_delta(make_session(tmp_path / "old.onnx"), ref) <= ATOL


def test_nomic_transformers_weight_names(tmp_path):
    """transformers' own layout (q/k/v_proj, gate/up/down_proj) converts to the same graph."""
    folder = tmp_path / "native"
    shutil.copytree(FIXTURES / "nomic-bert-tiny", folder)
    sd = load_file(str(folder / "model.safetensors"))
    native = {}
    for key, value in sd.items():
        key = key.replace("encoder.layers.", "layers.").replace("emb_ln", "embeddings.LayerNorm")
        if key.endswith("attn.Wqkv.weight"):
            for part, t in zip(np.split(value, 3), "qkv", strict=True):
                native[key.replace("attn.Wqkv", f"self_attn.{t}_proj")] = part.copy()
            continue
        for old, new in (("attn.out_proj", "self_attn.o_proj"), ("fc11", "up_proj"),
                         ("fc12", "gate_proj"), ("fc2", "down_proj"),
                         ("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")):  # fmt: skip
            key = key.replace(old, new)
        native[key] = value
    save_file(native, str(folder / "model.safetensors"))
    info = convert_checkpoint(folder, tmp_path / "native.onnx")
    assert info["weight_layout"] == "transformers"
    ref = reference("nomic-bert-tiny")
    assert max_hidden_delta(make_session(tmp_path / "native.onnx"), ref) <= ATOL


def test_nomic_original_config_keys(tmp_path):
    """Nomic's own config.json (n_embd, n_head, rotary_emb_base, ...) as the hub models have it."""
    folder = tmp_path / "orig"
    shutil.copytree(FIXTURES / "nomic-bert-tiny", folder)
    cfg = json.loads((folder / "config.json").read_text())
    old = {
        "n_embd": cfg.pop("hidden_size"),
        "n_head": cfg.pop("num_attention_heads"),
        "n_layer": cfg.pop("num_hidden_layers"),
        "n_inner": cfg.pop("intermediate_size"),
        "layer_norm_epsilon": cfg.pop("layer_norm_eps"),
        "rotary_emb_base": cfg.pop("rope_parameters")["rope_theta"],
        "activation_function": "swiglu",
        "rotary_emb_fraction": 1.0,
        "rotary_scaling_factor": None,
        "prenorm": False,
    }
    cfg.pop("hidden_act"), cfg.pop("head_dim")
    (folder / "config.json").write_text(json.dumps(cfg | old))
    convert_checkpoint(folder, tmp_path / "orig.onnx")
    ref = reference("nomic-bert-tiny")
    assert max_hidden_delta(make_session(tmp_path / "orig.onnx"), ref) <= ATOL


def test_mpnet_buckets_equal_torch():
    offsets = np.arange(-600, 601)
    torch_buckets = reference("mpnet-tiny")["relative_position_buckets"]
    assert relative_position_bucket(offsets).tolist() == torch_buckets


def test_xlm_roberta_reranker_logits(converted):
    path, info = converted[RERANKER]
    assert info["head"] == "XLMRobertaForSequenceClassification" and info["output"] == "logits"
    ref = reference(RERANKER)
    logits = run(make_session(path), padded(ref["input_ids"]))
    np.testing.assert_allclose(logits[:, 0], ref["logits"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", [a for a in ARCHS if a != "qwen3-tiny"])  # Qwen3 bakes unfused
def test_ort_fusion_keeps_the_outputs(converted, name, tmp_path):
    """The bake's fusion step (BERT optimizer, no EmbedLayerNormalization outside BERT)."""
    path, info = converted[name]
    fused = tmp_path / "fused.onnx"
    stats = fuse_transformer(path, fused, info["num_heads"], info["hidden_size"], False)
    assert stats.get("SkipLayerNormalization", 0) >= info["num_layers"]
    if name == "xlm-roberta-tiny":
        assert stats["Attention"] == info["num_layers"]
    assert max_hidden_delta(make_session(fused, optimize=False), reference(name)) <= ATOL


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"model_type": "llama", "architectures": ["LlamaModel"]}, "'LlamaModel'"),
        ({"model_type": "deberta-v2"}, "'deberta-v2'"),
    ],
)
def test_unsupported_architecture_names_the_supported(tmp_path, config, match):
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedArchitectureError, match=match) as err:
        convert_checkpoint(tmp_path, tmp_path / "x.onnx")
    for arch in ("XLMRobertaModel", "MPNetModel", "ModernBertModel", "NomicBertModel"):
        assert arch in str(err.value) and arch in SUPPORTED_ARCHITECTURES


def test_a_dense_family_cannot_make_a_reranker(tmp_path):
    with pytest.raises(UnsupportedArchitectureError, match="rerank model cannot be built"):
        convert_checkpoint(FIXTURES / "mpnet-tiny", tmp_path / "x.onnx", "rerank")


def test_qwen3_is_causal_and_groups_kv_heads(converted):
    """A later token must not change an earlier one's state; 2 kv heads serve 4 query heads."""
    path, info = converted["qwen3-tiny"]
    assert (info["num_heads"], info["num_kv_heads"]) == (4, 2)
    ids = reference("qwen3-tiny")["input_ids"][2]
    sess = make_session(path)
    full = run(sess, padded([ids]))[0]
    changed = run(sess, padded([ids[:-1] + [(ids[-1] + 1) % 300]]))[0]
    np.testing.assert_allclose(full[:-1], changed[:-1], atol=1e-6)
    assert np.abs(full[-1] - changed[-1]).max() > 1e-3
