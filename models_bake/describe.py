"""A model description read from the model's own files, for baking a model the registry lacks.

``python -m models_bake NAME --source DIR_OR_HF_REPO [flags]``: whatever the flags leave out comes
from the files a Hugging Face / sentence-transformers model folder holds:

- ``config.json``: the architecture (which converter; an unsupported one is an error naming the
  supported ones), the hidden size (dim) and the head (a sequence-classification head means a
  reranker, a masked-LM head without sentence-transformers modules a SPLADE model);
- ``modules.json`` + ``1_Pooling/config.json``: pooling (CLS, mean, last token) and whether a
  Normalize module follows; a module kettle does not apply (Dense, ...) is an error;
- ``sentence_bert_config.json`` (``max_seq_length``), else ``tokenizer_config.json``
  (``model_max_length``), bounded by the position table;
- ``config_sentence_transformers.json``: named prompts; "query" and "passage"/"document" become
  the query and passage prefixes.

The manifest then carries all of it, so the runtime needs no registration.
"""

from __future__ import annotations

import json
from pathlib import Path

from kettle.registry import ModelDescription, Source
from models_bake.convert import family_of

POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "last",
}
ST_MODULES = {"Transformer", "Pooling", "Normalize"}
# Positions some families reserve before the first token (RoBERTa-style padding offset).
POSITION_OFFSET = {"xlm-roberta": 2, "roberta": 2, "mpnet": 2}


class DescribeError(ValueError):
    """The model folder and the flags do not make a model kettle can bake."""


def _json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DescribeError(f"{path}: unreadable JSON ({exc})") from None


def _pooling_from_files(folder: Path, modules: list | None) -> tuple[str | None, bool | None]:
    if not modules:
        return None, None
    pooling, normalize = None, False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in ST_MODULES:
            raise DescribeError(
                f"{folder / 'modules.json'}: module {module.get('type')!r} is not supported "
                f"(kettle applies {', '.join(sorted(ST_MODULES))})"
            )
        if kind == "Normalize":
            normalize = True
        if kind == "Pooling":
            cfg = _json(folder / module.get("path", "1_Pooling") / "config.json") or {}
            modes = [name for key, name in POOLING_KEYS.items() if cfg.get(key)]
            others = [
                k
                for k, v in cfg.items()
                if k.startswith("pooling_mode_") and v and k not in POOLING_KEYS
            ]
            if others or len(modes) > 1:
                raise DescribeError(
                    f"{folder}: pooling {', '.join(others + modes)} is not supported "
                    "(kettle pools with one of cls, mean, last)"
                )
            pooling = modes[0] if modes else None
    return pooling, normalize


def _max_length(folder: Path, config: dict, family: str) -> int:
    st = _json(folder / "sentence_bert_config.json") or {}
    tok = _json(folder / "tokenizer_config.json") or {}
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    limit = int(positions) - POSITION_OFFSET.get(family, 0) if positions else None
    for value in (st.get("max_seq_length"), tok.get("model_max_length")):
        if isinstance(value, int | float) and 0 < value < 1_000_000:
            return int(min(value, limit)) if limit else int(value)
    if limit:
        return limit
    raise DescribeError(f"{folder}: no max length in its files; pass --max-length")


def describe(
    name: str,
    folder: Path,
    source: Source,
    *,
    kind: str | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
) -> ModelDescription:
    """The description of the model in ``folder``; the keyword arguments override its files."""
    folder = Path(folder)
    config = _json(folder / "config.json")
    if not isinstance(config, dict):
        raise DescribeError(f"{folder}: no config.json; not a model directory")
    family = family_of(config)  # UnsupportedArchitectureError names the supported ones
    arch = (config.get("architectures") or [""])[0]
    modules = _json(folder / "modules.json")
    if kind is None:
        if arch.endswith("ForSequenceClassification"):
            kind = "rerank"
        elif arch.endswith("ForMaskedLM") and not modules:
            kind = "sparse"
        else:
            kind = "dense"
    file_pooling, file_normalize = _pooling_from_files(folder, modules)
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
    if kind == "dense":
        dim = hidden
        pooling = pooling or file_pooling or "mean"
        normalize = normalize if normalize is not None else bool(file_normalize)
    elif kind == "rerank":
        dim = int(config.get("num_labels") or len(config.get("id2label") or {}) or 1)
        pooling, normalize = pooling or "none", bool(normalize)
    elif kind == "sparse":
        dim = int(config["vocab_size"])
        pooling, normalize = pooling or "splade", bool(normalize)
    else:
        raise DescribeError(f"--kind must be dense, sparse or rerank, not {kind!r}")
    if max_length is None:
        max_length = _max_length(folder, config, family)
    if max_length < 1:
        raise DescribeError(f"--max-length must be positive, not {max_length}")
    st = _json(folder / "config_sentence_transformers.json") or {}
    prompts = {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}
    if query_prefix is None:
        query_prefix = prompts.get("query", "")
    if passage_prefix is None:
        passage_prefix = prompts.get("passage", prompts.get("document", ""))
    return ModelDescription(
        name=name,
        kind=kind,
        dim=dim,
        pooling=pooling,
        normalize=normalize,
        max_length=int(max_length),
        sources=(source,),
        license="unknown",
        description=f"custom {arch or family} model baked from {source.type}:{source.ref}",
        architecture=family,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        prompts=prompts,
    )
