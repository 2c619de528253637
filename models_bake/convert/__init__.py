"""Checkpoint -> ONNX converters (no PyTorch needed), one module per architecture family.

``convert_checkpoint(model_dir, out, kind)`` reads config.json, picks the family by its
``model_type`` and the head the model kind needs (a dense model takes the encoder of any
checkpoint; a reranker needs a sequence-classification head). An architecture kettle does not
convert is an :class:`UnsupportedArchitectureError` naming it and the ones it does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from models_bake.convert import common
from models_bake.convert.bert import HEADS, INPUTS, convert


class Family(NamedTuple):
    """One converter family, declared once: the module that builds its graph, the model kinds it
    converts to (kind -> the head built), the checkpoint architectures it reads (config.json's
    "architectures"), and whether ORT's BERT optimizer fuses its graph at bake time."""

    module: str
    heads: dict[str, str]
    architectures: tuple[str, ...]
    fused: bool = True


# model_type -> its family. Qwen3's RMSNorm pattern crashes ORT's SimplifiedLayerNormalization
# fusion (onnxruntime 1.32), so Qwen3 bakes unfused.
FAMILIES: dict[str, Family] = {
    "bert": Family(
        "bert",
        {
            "dense": "BertModel",
            "sparse": "BertForMaskedLM",
            "rerank": "BertForSequenceClassification",
            "late_interaction": "BertModel",
        },
        (*HEADS, "HF_ColBERT"),  # ColBERT's own save: a BertModel and its projection
    ),
    "xlm-roberta": Family(
        "xlm_roberta",
        {"dense": "XLMRobertaModel", "rerank": "XLMRobertaForSequenceClassification"},
        ("XLMRobertaModel", "XLMRobertaForSequenceClassification", "XLMRobertaForMaskedLM"),
    ),
    "roberta": Family(
        "xlm_roberta",
        {"dense": "RobertaModel", "rerank": "RobertaForSequenceClassification"},
        ("RobertaModel", "RobertaForSequenceClassification", "RobertaForMaskedLM"),
    ),
    "mpnet": Family("mpnet", {"dense": "MPNetModel"}, ("MPNetModel", "MPNetForMaskedLM")),
    "modernbert": Family(
        "modernbert", {"dense": "ModernBertModel"}, ("ModernBertModel", "ModernBertForMaskedLM")
    ),
    "nomic_bert": Family(
        "nomic_bert", {"dense": "NomicBertModel"}, ("NomicBertModel", "NomicBertForMaskedLM")
    ),
    "qwen3": Family(
        "qwen3", {"dense": "Qwen3Model"}, ("Qwen3Model", "Qwen3ForCausalLM"), fused=False
    ),
}
# Derived views of the records, for the bake and error messages.
ARCHITECTURES: dict[str, tuple[str, ...]] = {t: f.architectures for t, f in FAMILIES.items()}
FUSED_FAMILIES = frozenset(t for t, f in FAMILIES.items() if f.fused)
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(a for v in ARCHITECTURES.values() for a in v)


class UnsupportedArchitectureError(ValueError):
    """A checkpoint whose architecture (or head, for the kind asked) kettle cannot convert."""


def family_of(config: dict) -> str:
    """The converter family of a config.json, or UnsupportedArchitectureError naming it.

    ``model_type`` decides: a checkpoint of a known family with another head (BertForPreTraining,
    MPNetForQuestionAnswering, ...) still gives its encoder; the converter reads the weights it
    needs and names any that are missing."""
    model_type = config.get("model_type")
    if model_type in FAMILIES:
        return model_type
    archs = config.get("architectures") or []
    what = (
        f"architecture {archs[0]!r} (model_type {model_type!r})"
        if archs
        else f"model_type {model_type!r}"
    )
    raise UnsupportedArchitectureError(
        f"unsupported {what}; kettle converts: {', '.join(SUPPORTED_ARCHITECTURES)}; "
        "bake a checkpoint of one of these, or an ONNX export of this model"
    )


def head_for(config: dict, kind: str) -> str:
    family = family_of(config)
    heads = FAMILIES[family].heads
    if kind not in heads:
        raise UnsupportedArchitectureError(
            f"a {kind} model cannot be built from a {family} checkpoint; "
            f"{family} converts to: {', '.join(sorted(heads))}"
        )
    return heads[kind]


def convert_checkpoint(model_dir: Path, out_path: Path, kind: str = "dense") -> dict:
    """Convert ``model_dir`` (config.json + safetensors) for a model of ``kind``; the info dict."""
    from importlib import import_module

    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json")
    config = json.loads(cfg_path.read_text())
    head = head_for(config, kind)
    family = family_of(config)
    if kind == "late_interaction":  # ColBERT: BERT's graph plus the projection
        info = import_module("models_bake.convert.colbert").convert(
            Path(model_dir), Path(out_path), head=head
        )
    else:
        build = import_module(f"models_bake.convert.{FAMILIES[family].module}").build_model
        info = common.convert_family(Path(model_dir), Path(out_path), build=build, head=head)
    return {"family": family, **info}


__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "Family",
    "FUSED_FAMILIES",
    "HEADS",
    "INPUTS",
    "SUPPORTED_ARCHITECTURES",
    "UnsupportedArchitectureError",
    "convert",
    "convert_checkpoint",
    "family_of",
    "head_for",
]
