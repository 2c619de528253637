"""Custom models of every converted family (baked from tests/fixtures/<arch>-tiny, not in the
registry) served by the HTTP API: /embed and /rerank answer with the library's vectors/scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.registry import Source
from kettle.rerank import TextCrossEncoder
from models_bake.bake import bake
from models_bake.describe import describe
from tests.conftest import FIXTURES

pytestmark = pytest.mark.bakes

ARCHS = ["xlm-roberta-tiny", "mpnet-tiny", "modernbert-tiny", "nomic-bert-tiny", "qwen3-tiny"]
RERANKER = "xlm-roberta-reranker-tiny"


@pytest.fixture(scope="module")
def custom_models(tmp_path_factory):
    """Each tiny model baked int8 (--quantize auto) through the gate, described by its files."""
    out = tmp_path_factory.mktemp("custom-api")
    for arch in [*ARCHS, RERANKER]:
        source = Source("local", str(FIXTURES / arch))
        bake(f"custom/{arch}", out=out, source=source, quantize="auto",
             description=describe(f"custom/{arch}", FIXTURES / arch, source))  # fmt: skip
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_embed_serves_a_custom_model(call_api, monkeypatch, custom_models, arch):
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(custom_models))
    monkeypatch.setenv("KETTLE_MODEL", f"custom/{arch}")
    texts = json.loads((FIXTURES / f"{arch}.reference.json").read_text())["texts"][:5]
    result = call_api("POST", "/embed", {"inputs": texts})
    assert result.status == 200, result
    want = np.stack(list(TextEmbedding(f"custom/{arch}", models_dir=custom_models).embed(texts)))
    want /= np.linalg.norm(want, axis=1, keepdims=True)  # /embed normalises by default (TEI)
    np.testing.assert_allclose(np.asarray(result.json(), np.float32), want, atol=1e-6)


def test_rerank_serves_a_custom_xlm_roberta_reranker(call_api, monkeypatch, custom_models):
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(custom_models))
    monkeypatch.setenv("KETTLE_MODEL", f"custom/{ARCHS[0]}")
    monkeypatch.setenv("KETTLE_RERANK_MODEL", f"custom/{RERANKER}")
    docs = ["a kettle boils water", "Paris is in France", "tea and coffee"]
    result = call_api("POST", "/rerank", {"query": "what boils water?", "texts": docs})
    assert result.status == 200, result
    model = TextCrossEncoder(f"custom/{RERANKER}", models_dir=custom_models)
    logits = np.asarray(model.rerank_pairs([("what boils water?", d) for d in docs]))
    want = 1 / (1 + np.exp(-logits))  # /rerank answers sigmoid scores, as TEI does
    got = {r["index"]: r["score"] for r in result.json()}
    np.testing.assert_allclose([got[i] for i in range(3)], want, atol=1e-5)


def test_embed_applies_a_named_prompt_and_refuses_an_unknown_one(
    call_api, monkeypatch, custom_models
):
    """TEI's prompt_name: the manifest's named prompt (sentence-transformers' prompts), as the
    library's embed(prompt_name=) applies it; a name the model lacks is a 422 naming the field."""
    arch = "mpnet-tiny"
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(custom_models))
    monkeypatch.setenv("KETTLE_MODEL", f"custom/{arch}")
    model = TextEmbedding(f"custom/{arch}", models_dir=custom_models)
    [name, *_] = sorted(model.prompts)
    texts = ["a kettle boils water", "tea"]
    result = call_api("POST", "/embed", {"inputs": texts, "prompt_name": name})
    assert result.status == 200, result
    want = np.stack(list(model.embed(texts, prompt_name=name)))
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(result.json(), np.float32), want, atol=1e-6)
    plain = np.asarray(call_api("POST", "/embed", {"inputs": texts}).json(), np.float32)
    assert not np.allclose(plain, want, atol=1e-4)  # the prompt changed the vectors
    refused = call_api("POST", "/embed", {"inputs": texts, "prompt_name": "no-such-prompt"})
    assert refused.status == 422, refused
    assert refused.error["param"] == "prompt_name"
    assert name in refused.error["message"]
