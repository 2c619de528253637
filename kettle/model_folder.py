"""What a Hugging Face / sentence-transformers model folder says about itself: pooling,
normalisation, max length and named prompts, read from its own files.

The bake's custom-model path (``python -m models_bake NAME --source DIR``, models_bake.describe)
and ``add_custom_model`` with a local folder both read a folder through here, so a model baked
either way truncates, pools and prompts as sentence-transformers does with the same folder:

- ``modules.json`` + ``1_Pooling/config.json``: pooling (CLS, mean, last token) and whether a
  Normalize module follows; a module kettle does not apply (Dense, ...) is an error;
- ``sentence_bert_config.json`` (``max_seq_length``), else ``tokenizer_config.json``
  (``model_max_length``), bounded by the position table of ``config.json``;
- ``config_sentence_transformers.json``: named prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "last",
}
ST_MODULES = {"Transformer", "Pooling", "Normalize"}
# Positions some families reserve before the first token (RoBERTa-style padding offset),
# by config.json's model_type.
POSITION_OFFSET = {"xlm-roberta": 2, "roberta": 2, "mpnet": 2}


class ModelFolderError(ValueError):
    """A model folder whose files do not make a model kettle can bake."""


def read_json(path: Path) -> Any:
    """The file's JSON, None when it is absent; unreadable JSON is a ModelFolderError."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path}: unreadable JSON ({exc})") from None


def pooling_from_files(folder: Path, modules: list | None) -> tuple[str | None, bool | None]:
    """(pooling, normalize) from sentence-transformers' modules; (None, None) without them."""
    if not modules:
        return None, None
    pooling, normalize = None, False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in ST_MODULES:
            raise ModelFolderError(
                f"{folder / 'modules.json'}: module {module.get('type')!r} is not supported "
                f"(kettle applies {', '.join(sorted(ST_MODULES))})"
            )
        if kind == "Normalize":
            normalize = True
        if kind == "Pooling":
            cfg = read_json(folder / module.get("path", "1_Pooling") / "config.json") or {}
            modes = [name for key, name in POOLING_KEYS.items() if cfg.get(key)]
            others = [
                k
                for k, v in cfg.items()
                if k.startswith("pooling_mode_") and v and k not in POOLING_KEYS
            ]
            if others or len(modes) > 1:
                raise ModelFolderError(
                    f"{folder}: pooling {', '.join(others + modes)} is not supported "
                    "(kettle pools with one of cls, mean, last)"
                )
            pooling = modes[0] if modes else None
    return pooling, normalize


def max_length_from_files(folder: Path, config: dict) -> int | None:
    """sentence-transformers' max_seq_length, else the tokenizer's model_max_length, bounded by
    the position table; None when the folder says nothing."""
    st = read_json(folder / "sentence_bert_config.json") or {}
    tok = read_json(folder / "tokenizer_config.json") or {}
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    offset = POSITION_OFFSET.get(str(config.get("model_type")), 0)
    limit = int(positions) - offset if positions else None
    for value in (st.get("max_seq_length"), tok.get("model_max_length")):
        if isinstance(value, int | float) and 0 < value < 1_000_000:
            return int(min(value, limit)) if limit else int(value)
    return limit


def prompts_from_files(folder: Path) -> dict[str, str]:
    st = read_json(folder / "config_sentence_transformers.json") or {}
    return {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}


def folder_settings(folder: str | Path) -> dict[str, Any]:
    """What the folder's files say, only the keys they settle: ``pooling``, ``normalize``,
    ``max_length``, ``prompts``, ``dim`` (the hidden size)."""
    folder = Path(folder)
    config = read_json(folder / "config.json")
    config = config if isinstance(config, dict) else {}
    pooling, normalize = pooling_from_files(folder, read_json(folder / "modules.json"))
    found: dict[str, Any] = {
        "pooling": pooling,
        "normalize": normalize,
        "max_length": max_length_from_files(folder, config),
        "prompts": prompts_from_files(folder) or None,
        "dim": config.get("hidden_size") or config.get("n_embd"),
    }
    return {k: v for k, v in found.items() if v is not None}


def onnx_export(folder: str | Path, model_file: str | None = None) -> str | None:
    """The ONNX file of a folder that holds no safetensors weights (what FastEmbed and Optimum
    users have: model.onnx, tokenizer files, config.json): ``model_file`` when it is there, else
    model.onnx or onnx/model.onnx. None when the folder has safetensors (kettle converts those,
    the path to the fastest graph) or no ONNX file."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        return None
    for rel in dict.fromkeys((model_file, "model.onnx", "onnx/model.onnx")):
        if rel and (folder / rel).is_file():
            return rel
    return None
