"""Issue 23, library side: sentence-transformers' encode / similarity, output precision and
Matryoshka dimensions in kettle (calibrated once per bake), and keywords kettle does not
implement refused by name."""

from __future__ import annotations

import inspect
import json
import shutil

import numpy as np
import pytest

from kettle.dense import TextEmbedding
from kettle.output import (
    CalibrationMissingError,
    InvalidDimensionsError,
    OutputCalibration,
    quantize_embeddings,
)
from tests.conftest import MINILM

TEXTS = ["The kettle is boiling.", "Tea is ready in the pot.", "Quarterly revenue grew by 4%."]


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- encode and similarity
def test_encode_returns_an_ndarray_a_str_one_vector(model):
    matrix = model.encode(TEXTS)
    assert isinstance(matrix, np.ndarray) and matrix.shape == (3, 384)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.stack(list(model.embed(TEXTS))))
    one = model.encode(TEXTS[0])
    assert one.shape == (384,)
    np.testing.assert_allclose(one, matrix[0], atol=1e-6)
    assert model.encode([]).shape == (0, 384)
    rows = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 3 and rows[0].shape == (384,)
    assert model.get_sentence_embedding_dimension() == 384


def test_normalize_embeddings_false_keeps_the_models_own_normalize(model):
    """all-MiniLM-L6-v2 ends in a Normalize module: unit vectors either way, as in ST."""
    raw_default = model.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(raw_default, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(
        model.encode(TEXTS, normalize_embeddings=True), raw_default, atol=1e-6
    )


def test_truncate_dim_renormalizes_only_with_normalize_embeddings(model):
    full = model.encode(TEXTS)
    cut = model.encode(TEXTS, truncate_dim=64)
    np.testing.assert_allclose(cut, full[:, :64], atol=1e-6)  # sentence-transformers' order
    assert np.linalg.norm(cut, axis=1).max() < 0.99
    unit = model.encode(TEXTS, truncate_dim=64, normalize_embeddings=True)
    np.testing.assert_allclose(unit, unit_rows(full[:, :64]), atol=1e-6)
    with pytest.raises(InvalidDimensionsError, match="dimensions is 385"):
        model.encode(TEXTS, truncate_dim=385)


def test_similarity_is_the_cosine_matrix(model):
    a, b = model.encode(TEXTS), model.encode(TEXTS[:2], normalize_embeddings=True)
    sims = model.similarity(a * 3, b)  # lengths do not matter
    assert sims.shape == (3, 2)
    np.testing.assert_allclose(sims, unit_rows(a) @ unit_rows(b).T, atol=1e-6)
    assert model.similarity(a[0], a[0]).shape == (1, 1)
    assert TextEmbedding.similarity_fn_name == "cosine"


def test_prompt_text_and_prefixes(model):
    prompted = model.encode(TEXTS, prompt="query: ")
    np.testing.assert_allclose(prompted, model.encode(["query: " + t for t in TEXTS]), atol=1e-6)
    assert np.abs(prompted - model.encode(TEXTS)).max() > 1e-3
    # MiniLM has no prompts and no prefixes: encode_query / encode_document are encode
    np.testing.assert_allclose(model.encode_query(TEXTS), model.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(model.encode_document(TEXTS), model.encode(TEXTS), atol=1e-6)
    with pytest.raises(ValueError, match="no prompt 'query'"):
        model.encode(TEXTS, prompt_name="query")


def test_token_embeddings_output(model):
    rows = model.encode(TEXTS, output_value="token_embeddings")
    want = list(model.embed_tokens(TEXTS))
    assert len(rows) == 3 and all(np.array_equal(r, w) for r, w in zip(rows, want, strict=True))


@pytest.mark.parametrize(
    "keyword, pattern",
    [
        ({"convert_to_tensor": True}, "convert_to_tensor"),
        ({"device": "cuda"}, "device"),
        ({"pool": object()}, "pool"),
        ({"chunk_size": 4}, "chunk_size"),
    ],
)
def test_encode_refuses_what_it_does_not_do_by_name(model, keyword, pattern):
    with pytest.raises(TypeError, match=pattern):
        model.encode(TEXTS, **keyword)


# ---------------------------------------------------------------- unknown keywords
ST_ONLY = ["normalize_embeddings", "precision_typo", "truncate_dim", "prompt", "show_progress_bar"]


@pytest.mark.parametrize("keyword", ST_ONLY + ["dimension"])
def test_embed_refuses_keywords_it_does_not_implement(model, keyword):
    with pytest.raises(TypeError, match=keyword):
        model.embed(TEXTS, **{keyword: True})
    with pytest.raises(TypeError, match=keyword):
        model.query_embed(TEXTS, **{keyword: True})
    with pytest.raises(TypeError, match=keyword):
        model.passage_embed(TEXTS, **{keyword: True})
    with pytest.raises(TypeError, match=keyword):
        model.embed_with_usage(TEXTS, **{keyword: True})


def test_every_kind_refuses_unknown_keywords():
    """No public embed / rerank method swallows keywords: each kind's call raises a TypeError
    naming the keyword (before the body touches the model)."""
    from kettle.bm25 import Bm25
    from kettle.image import ImageEmbedding
    from kettle.late_interaction import LateInteractionTextEmbedding
    from kettle.rerank import TextCrossEncoder
    from kettle.sparse import SparseTextEmbedding

    calls = {
        SparseTextEmbedding: ("embed", "query_embed", "passage_embed", "embed_with_usage"),
        LateInteractionTextEmbedding: ("embed", "query_embed", "passage_embed"),
        TextCrossEncoder: ("rerank_pairs", "rerank"),
        ImageEmbedding: ("embed",),
        Bm25: ("embed", "query_embed", "passage_embed"),
    }
    for cls, methods in calls.items():
        instance = object.__new__(cls)
        for name in methods:
            args = {"rerank": ("q", ["d"]), "rerank_pairs": ([("q", "d")],)}.get(name, (["d"],))
            with pytest.raises(TypeError, match="normalize_embeddings"):
                result = getattr(instance, name)(*args, normalize_embeddings=True)
                next(iter(result))  # a generator binds its arguments when called
    for cls in (*calls, TextEmbedding):  # and none declares **kwargs on the embed path
        for name in ("embed", "embed_with_usage", "rerank_pairs"):
            method = getattr(cls, name, None)
            if method is None:
                continue
            kinds = {p.kind for p in inspect.signature(method).parameters.values()}
            assert inspect.Parameter.VAR_KEYWORD not in kinds, (cls.__name__, name)


def test_fastembed_keywords_still_work(model):
    a = list(model.embed(TEXTS, batch_size=2, parallel=None))
    b = list(model.query_embed(TEXTS, batch_size=2, parallel=None))
    c = list(model.passage_embed(TEXTS, batch_size=2, parallel=None))
    assert len(a) == len(b) == len(c) == 3


# ---------------------------------------------------------------- precision and dimensions
def st_quantize(embeddings, precision, ranges):
    """sentence-transformers' quantize_embeddings with ``ranges``, written out as the oracle."""
    if precision == "ubinary":
        return np.packbits(embeddings > 0).reshape(embeddings.shape[0], -1)
    if precision == "binary":
        return (np.packbits(embeddings > 0).reshape(embeddings.shape[0], -1) - 128).astype(np.int8)
    starts, steps = ranges[0, :], (ranges[1, :] - ranges[0, :]) / 255
    if precision == "uint8":
        return ((embeddings - starts) / steps).astype(np.uint8)
    return ((embeddings - starts) / steps - 128).astype(np.int8)


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_quantize_embeddings_is_sentence_transformers(precision):
    import kettle

    assert kettle.quantize_embeddings is quantize_embeddings  # sentence-transformers' name
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 64)).astype(np.float32)
    ranges = np.vstack((x.min(0) - 0.01, x.max(0) + 0.01)).astype(np.float32)
    np.testing.assert_array_equal(
        quantize_embeddings(x, precision, ranges=ranges), st_quantize(x, precision, ranges)
    )
    # calibration_embeddings: their min and max, as sentence-transformers
    got = quantize_embeddings(x[:5], precision, calibration_embeddings=x)
    tight = np.vstack((x.min(0), x.max(0)))
    if precision in ("int8", "uint8"):
        inside = st_quantize(x[:5], precision, tight)
        np.testing.assert_array_equal(got, inside)
    # out of range: the end codes, never wrapped around
    far = quantize_embeddings(np.full((1, 64), 100, np.float32), precision, ranges=ranges)
    if precision == "int8":
        assert (far == 127).all()
    elif precision == "uint8":
        assert (far == 255).all()


def test_a_text_gets_the_same_codes_whatever_it_is_embedded_with(model):
    for precision in ("int8", "uint8"):
        alone = model.encode("tea", precision=precision)
        among = model.encode([*TEXTS, "tea"], precision=precision)
        np.testing.assert_array_equal(alone, among[-1])
        streamed = list(model.embed(["x", "tea"], precision=precision, parallel=2))
        np.testing.assert_array_equal(streamed[1], alone)
        assert alone.dtype == (np.int8 if precision == "int8" else np.uint8)


def test_int8_uses_the_bakes_ranges(model):
    ranges = np.asarray(model.manifest.calibration["unit"], np.float32)
    assert ranges.shape == (2, 384) and (ranges[0] <= ranges[1]).all()
    vectors = model.encode(TEXTS)
    varying = ranges[1] > ranges[0]  # all-MiniLM-L6-v2 has two dimensions that are always 0
    start, end = ranges[:, varying]
    inside = (vectors[:, varying] >= start) & (vectors[:, varying] <= end)
    want = st_quantize(vectors[:, varying], "int8", ranges[:, varying])
    got = model.encode(TEXTS, precision="int8")[:, varying]
    np.testing.assert_array_equal(got[inside], want[inside])
    # past the calibrated range: the end code (sentence-transformers would wrap around)
    above = vectors[:, varying] > end
    assert (got[above] == 127).all() and (got[~inside & ~above] == -128).all()


def test_caller_ranges_and_calibration_embeddings_win(model):
    calib = model.encode(TEXTS * 2)
    by_table = model.encode(TEXTS, precision="uint8", calibration_embeddings=calib)
    ranges = np.vstack((calib.min(0), calib.max(0)))
    np.testing.assert_array_equal(by_table, model.encode(TEXTS, precision="uint8", ranges=ranges))
    np.testing.assert_array_equal(by_table, quantize_embeddings(calib[:3], "uint8", ranges))
    with pytest.raises(ValueError, match=r"ranges must have shape \(2, 384\)"):
        model.encode(TEXTS, precision="int8", ranges=np.zeros((3, 384)))


def test_dimensions_cut_and_renormalize(model):
    full = np.stack(list(model.embed(TEXTS)))
    cut = np.stack(list(model.embed(TEXTS, dimensions=32)))
    np.testing.assert_allclose(cut, unit_rows(full[:, :32]), atol=1e-6)
    raw_full = np.stack(list(model.embed(TEXTS, normalize=False)))
    raw = model.embed_with_usage(TEXTS, normalize=False, dimensions=32).vectors
    np.testing.assert_allclose(raw, raw_full[:, :32], atol=1e-6)  # raw output stays raw
    packed = model.embed_with_usage(TEXTS, dimensions=64, precision="binary").vectors
    assert packed.shape == (3, 8) and packed.dtype == np.int8
    int8 = model.embed_with_usage(TEXTS, dimensions=64, precision="int8").vectors
    assert int8.shape == (3, 64) and int8.dtype == np.int8
    assert np.abs(int8.astype(int)).max() < 128  # the scaled unit ranges hold the values
    with pytest.raises(InvalidDimensionsError, match="makes 384-dimensional"):
        list(model.embed(TEXTS, dimensions=400))
    with pytest.raises(ValueError, match="precision must be one of"):
        list(model.embed(TEXTS, precision="int4"))
    assert model.embed_with_usage([], precision="ubinary").vectors.shape == (0, 48)


def test_a_bake_without_ranges_fails_clearly(models_dir, tmp_path):
    """Bakes from before the calibration field: int8/uint8 refused with the way out, never
    calibrated per call; float32 and binary work as before."""
    folder = tmp_path / MINILM
    shutil.copytree(models_dir / MINILM, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["calibration"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = TextEmbedding(models_dir=tmp_path)
    assert old.calibration is None
    with pytest.raises(CalibrationMissingError, match="re-bake it, or pass ranges="):
        old.encode(TEXTS, precision="int8")
    assert old.encode(TEXTS, precision="binary").shape == (3, 48)
    calib = old.encode(TEXTS)
    assert old.encode(TEXTS, precision="int8", calibration_embeddings=calib).dtype == np.int8


def test_calibration_round_trips_and_scales_for_a_cut():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(200, 16)) * 3
    c = OutputCalibration.measure(raw, "test")
    back = OutputCalibration.from_json(json.loads(json.dumps(c.to_json())))
    np.testing.assert_allclose(back.unit, c.unit, atol=1e-6)
    assert back.texts == 200 and abs(float(back.kept_norm[-1]) - 1) < 1e-6
    np.testing.assert_allclose(c.ranges(16, normalized=False, renormalized=False), c.raw)
    cut = c.ranges(4, normalized=True, renormalized=True)
    np.testing.assert_allclose(cut, c.unit[:, :4] / c.kept_norm[3], rtol=1e-6)
