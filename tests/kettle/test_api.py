"""The public API of issue 8: errors with field and index, embed(normalize=, truncate=),
embed_with_usage (one tokenization), the lazy package, the one ONNX base class."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from kettle.dense import TextEmbedding
from kettle.errors import (
    ImageInputError,
    InvalidTextError,
    KettleInputError,
    TextTooLongError,
    check_texts,
)
from kettle.image import ImageEmbedding
from kettle.late_interaction import LateInteractionTextEmbedding
from kettle.onnx_model import OnnxModel, resolve_providers
from kettle.rerank import TextCrossEncoder
from kettle.sparse import SparseTextEmbedding
from tests.conftest import REPO

LONG = "word " * 400  # 402 tokens with [CLS] and [SEP]; the model reads 256


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


# ---------------------------------------------------------------- errors
def test_lone_surrogate_is_named_by_index_and_character():
    with pytest.raises(InvalidTextError) as caught:
        check_texts(["fine", "é ok", "ab\ud800c"], offset=1)
    error = caught.value
    assert str(error) == "texts[3]: lone surrogate U+D800 at character 2"
    assert (error.field, error.index) == ("texts", 3)
    assert isinstance(error, KettleInputError) and isinstance(error, ValueError)
    assert isinstance(error, TypeError)  # a non-str item was a TypeError before: still caught
    check_texts(["emoji \U0001f375 is a pair, not a lone surrogate"])


def test_model_rejects_lone_surrogates_before_the_tokenizer(model):
    for call in (
        lambda t: list(model.embed(t)),
        lambda t: model.embed_with_usage(t),
        lambda t: model.token_counts(t),
    ):
        with pytest.raises(InvalidTextError, match=r"texts\[1\]: lone surrogate U\+DFFF"):
            call(["tea", "\udfff"])


def test_non_str_items_keep_their_message(model):
    with pytest.raises(InvalidTextError, match=r"texts\[2\] is NoneType, not str") as caught:
        model.embed_with_usage(["a", "b", None])
    assert caught.value.index == 2 and caught.value.reason.startswith("is NoneType")


@pytest.mark.parametrize(
    ("texts", "words"),
    [
        (None, "texts is None: expected a str or an iterable of str"),
        (5, "texts is int: expected a str or an iterable of str"),
        (b"x", "texts is bytes: expected a str or an iterable of str (decode bytes to str first)"),
        ({"a": 1}, "texts is dict: expected a str or an iterable of str, not a mapping"),
    ],
)
def test_an_argument_that_is_not_texts_says_what_was_expected(model, texts, words):
    """Not a plain TypeError from deep inside, and never a dict's keys embedded as texts."""
    calls = {
        "embed": lambda: model.embed(texts),  # raised at the call, before any iteration
        "embed_with_usage": lambda: model.embed_with_usage(texts),
        "token_counts": lambda: model.token_counts(texts),
        "query_embed": lambda: model.query_embed(texts),
        "embed_tokens": lambda: model.embed_tokens(texts),
        "prompt_name": lambda: model.embed(texts, prompt_name="query"),
    }
    for name, call in calls.items():
        if name == "prompt_name" and not model.prompts:
            continue
        with pytest.raises(KettleInputError) as caught:
            call()
        assert str(caught.value).startswith(words), name
        assert (caught.value.field, caught.value.index) == ("texts", None), name


def test_an_item_that_is_not_text_is_named_by_its_index(model):
    for item, kind in ((None, "NoneType"), (5, "int"), (b"x", "bytes"), ({"a": 1}, "dict")):
        with pytest.raises(KettleInputError, match=rf"texts\[1\] is {kind}, not str"):
            list(model.embed(["fine", item]))


def test_errors_pickle_with_their_fields():
    error = TextTooLongError(index=4, tokens=300, limit=256, model="m")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.index, copy.tokens, copy.limit, str(copy)) == (4, 300, 256, str(error))
    image = pickle.loads(pickle.dumps(ImageInputError("not an image", index=1)))
    assert (image.field, image.index, image.reason) == ("images", 1, "not an image")


# ---------------------------------------------------------------- embed(normalize=, truncate=)
def test_normalize_overrides_the_manifest(model):
    texts = ["a kettle boils water", "tea"]
    unit = np.stack(list(model.embed(texts)))
    raw = np.stack(list(model.embed(texts, normalize=False)))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)
    assert raw.dtype == np.float32
    np.testing.assert_array_equal(np.stack(list(model.embed(texts, normalize=True))), unit)


def test_truncate_false_raises_for_the_first_long_text(model):
    with pytest.raises(TextTooLongError) as caught:
        list(model.embed(["short", LONG, LONG], truncate=False))
    error = caught.value
    assert (error.index, error.tokens, error.limit, error.field) == (1, 402, 256, "texts")
    assert "texts[1] has 402 tokens" in str(error) and "at most 256" in str(error)
    # the default cuts it, and a text at the limit passes
    assert len(list(model.embed([LONG]))) == 1
    exact = "word " * 254  # 256 tokens
    assert model.embed_with_usage([exact], truncate=False).token_counts == [256]


def test_truncate_false_embeds_nothing(model, monkeypatch):
    runs = []
    original = model.run
    monkeypatch.setattr(model, "run", lambda enc: runs.append(len(enc)) or original(enc))
    with pytest.raises(TextTooLongError, match=r"texts\[30\]"):
        model.embed_with_usage(["short text"] * 30 + [LONG], truncate=False, batch_size=4)
    assert runs == []


# ---------------------------------------------------------------- embed_with_usage
def test_embed_with_usage_equals_embed_and_counts(model):
    texts = ["tea", "a kettle boils water", LONG, ""]
    got = model.embed_with_usage(texts)
    assert got.vectors.shape == (4, 384) and got.vectors.dtype == np.float32
    np.testing.assert_allclose(got.vectors, np.stack(list(model.embed(texts))), atol=1e-6)
    assert got.token_counts == model.token_counts(texts) == [3, 7, 256, 2]
    assert got.total_tokens == sum(got.token_counts)
    assert model.embed_with_usage([]).vectors.shape == (0, 384)


def test_embed_with_usage_tokenizes_once(model, monkeypatch):
    calls = []
    original = model.tokenizer.encode
    monkeypatch.setattr(model.tokenizer, "encode", lambda t: calls.append(len(t)) or original(t))
    model.embed_with_usage(["one", "two", "three"], truncate=False)
    assert calls == [3]


def test_kind_applies_the_prefix_to_vectors_and_counts(models_dir, monkeypatch):
    fresh = TextEmbedding(models_dir=models_dir, threads=1)
    monkeypatch.setattr(fresh.baked.manifest, "query_prefix", "query: ")
    query = fresh.embed_with_usage(["tea"], kind="query")
    plain = fresh.embed_with_usage(["query: tea"])
    np.testing.assert_allclose(query.vectors, plain.vectors, atol=1e-6)
    assert query.token_counts == plain.token_counts == [5]
    np.testing.assert_allclose(next(fresh.query_embed("tea")), plain.vectors[0], atol=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        fresh.embed_with_usage(["tea"], kind="document")


def test_sparse_embed_with_usage(models_dir):
    splade = SparseTextEmbedding(models_dir=models_dir, threads=1)
    texts = ["the cat sat on the mat", "tea"]
    got = splade.embed_with_usage(texts, top_k=5)
    want = list(splade.embed(texts, top_k=5))
    assert [v.as_dict().keys() for v in got.vectors] == [v.as_dict().keys() for v in want]
    assert got.token_counts == splade.token_counts(texts)
    unit = splade.embed_with_usage(texts, normalize=True).vectors
    np.testing.assert_allclose([np.linalg.norm(v.values) for v in unit], 1.0, atol=1e-5)
    with pytest.raises(TextTooLongError, match=r"texts\[0\] has 602 tokens"):
        splade.embed_with_usage(["word " * 600], truncate=False)


# ---------------------------------------------------------------- one base class
def test_every_kind_shares_the_onnx_base():
    for cls in (
        TextEmbedding,
        SparseTextEmbedding,
        TextCrossEncoder,
        LateInteractionTextEmbedding,
        ImageEmbedding,
    ):
        assert issubclass(cls, OnnxModel)
        assert "__init__" not in vars(cls), f"{cls.__name__} overrides __init__"
        assert cls.default_model and cls.kind
    assert "token_budget" in vars(SparseTextEmbedding)  # its logits are tokens x vocab


def test_constructor_options(models_dir):
    with pytest.raises(TypeError, match=r"TextEmbedding\(\) got unexpected keyword.*: colour"):
        TextEmbedding(models_dir=models_dir, colour="blue")
    with pytest.raises(ValueError, match="max_length must be in 1..256"):
        TextEmbedding(models_dir=models_dir, max_length=1000)
    lazy = TextEmbedding(models_dir=models_dir, token_budget=512)
    assert lazy._session is None and lazy.token_budget == 512
    eager = TextEmbedding(None, models_dir, 1, lazy_load=False)
    assert eager._session is not None


def test_providers_from_fastembed_arguments():
    assert resolve_providers(None) is None
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(None, cuda=True, device_ids=[1]) == [
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    with pytest.raises(ValueError, match="mutually exclusive"):
        resolve_providers(["CPUExecutionProvider"], cuda=True)


# ---------------------------------------------------------------- the lazy package
def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def test_import_kettle_loads_no_runtime():
    out = _run(
        "import sys, kettle; print(sorted(m for m in ('onnxruntime', 'numpy', 'tokenizers', "
        "'kettle.dense') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_names_load_on_first_use():
    out = _run(
        "import sys\n"
        "from kettle import ImageEmbedding, LateInteractionTextEmbedding, Bm25\n"
        "import kettle\n"
        "print(ImageEmbedding.__module__, LateInteractionTextEmbedding.__module__,\n"
        "      'onnxruntime' in sys.modules, 'PIL' in sys.modules)\n"
    )
    assert out.split() == ["kettle.image", "kettle.late_interaction", "False", "False"]
    import kettle

    assert set(kettle.__all__) <= set(dir(kettle))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kettle.Nope  # noqa: B018


def test_all_lists_every_export():
    import kettle

    assert sorted(kettle.__all__) == sorted(kettle._EXPORTS)
    for name in kettle.__all__:
        assert getattr(kettle, name) is not None
