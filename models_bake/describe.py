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

The manifest then carries all of it, so the runtime needs no registration. The files are read by
kettle.model_folder, which ``add_custom_model`` with a local folder shares.
"""

from __future__ import annotations

from pathlib import Path

from kettle.model_folder import ModelFolderError as DescribeError  # what --source errors raise
from kettle.model_folder import (
    max_length_from_files,
    pooling_from_files,
    prompts_from_files,
    read_json,
)
from kettle.registry import ModelDescription, Source
from models_bake.convert import family_of


def _max_length(folder: Path, config: dict) -> int:
    found = max_length_from_files(folder, config)
    if found is None:
        raise DescribeError(f"{folder}: no max length in its files; pass --max-length")
    return found


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
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise DescribeError(f"{folder}: no config.json; not a model directory")
    family = family_of(config)  # UnsupportedArchitectureError names the supported ones
    arch = (config.get("architectures") or [""])[0]
    modules = read_json(folder / "modules.json")
    if kind is None:
        if arch.endswith("ForSequenceClassification"):
            kind = "rerank"
        elif arch.endswith("ForMaskedLM") and not modules:
            kind = "sparse"
        else:
            kind = "dense"
    file_pooling, file_normalize = pooling_from_files(folder, modules)
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
        max_length = _max_length(folder, config)
    if max_length < 1:
        raise DescribeError(f"--max-length must be positive, not {max_length}")
    prompts = prompts_from_files(folder)
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
