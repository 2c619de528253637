"""Bm25: parity with FastEmbed 0.9.1's Qdrant/bm25 (recorded fixture), the formula, local IDF."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from kettle.bm25 import ENGLISH_STOPWORDS, Bm25, words
from tests.conftest import FIXTURES

FASTEMBED = json.loads((FIXTURES / "bm25_fastembed.json").read_text())
CASES = {case["name"]: case for case in FASTEMBED["cases"]}
COLLISION_CASE = "hash collision (kettle differs by design)"
PARITY_CASES = [name for name in CASES if name != COLLISION_CASE]


def test_fixture_was_made_with_fastembed_0_9_1():
    assert FASTEMBED["versions"]["fastembed"] == "0.9.1"
    assert len(PARITY_CASES) == 4 and sum(len(CASES[n]["documents"]) for n in PARITY_CASES) > 50


@pytest.mark.parametrize("name", PARITY_CASES)
def test_documents_match_fastembed(name):
    case = CASES[name]
    bm25 = Bm25(**case["kettle_args"])
    docs = [d["text"] for d in case["documents"]]
    for want, got in zip(case["documents"], bm25.embed(docs), strict=True):
        assert got.indices.tolist() == want["indices"], want["text"]
        assert got.indices.dtype == np.int64 and got.values.dtype == np.float32
        np.testing.assert_allclose(got.values, want["values"], rtol=1e-6, err_msg=want["text"])


@pytest.mark.parametrize("name", PARITY_CASES)
def test_queries_match_fastembed(name):
    case = CASES[name]
    bm25 = Bm25(**case["kettle_args"])
    queries = [q["text"] for q in case["queries"]]
    for want, got in zip(case["queries"], bm25.query_embed(queries), strict=True):
        assert got.indices.tolist() == want["indices"], want["text"]
        assert got.values.tolist() == [1.0] * len(want["indices"])


def test_colliding_terms_are_one_term_independent_of_order():
    """abs(murmur3) maps 'kitchens' (358434922) and 'prostaglandins' (-358434922) to one id.
    FastEmbed 0.9.1 keeps the weight of the last stem it saw; kettle counts both."""
    assert Bm25().token_id("kitchens") == Bm25().token_id("prostaglandins") == 358434922
    case = CASES[COLLISION_CASE]
    fastembed = [d["values"] for d in case["documents"]]
    assert fastembed[0] != fastembed[1]  # FastEmbed: the order of the words changes the vector
    bm25 = Bm25(**case["kettle_args"])
    a, b = bm25.embed([d["text"] for d in case["documents"]])
    assert a.as_dict() == b.as_dict()
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 256)
    assert a.as_dict() == {358434922: pytest.approx(3 * 2.2 / (3 + norm), rel=1e-6)}


def test_formula_by_hand():
    bm25 = Bm25(language=None, stopwords=[], k=0.9, b=0.4, avg_len=3.0)
    [vec] = bm25.embed("b a b c b")
    norm = 0.9 * (1 - 0.4 + 0.4 * 5 / 3.0)
    want = {bm25.token_id(t): tf * 1.9 / (tf + norm) for t, tf in (("a", 1), ("b", 3), ("c", 1))}
    assert vec.as_dict() == pytest.approx(want, rel=1e-6)
    assert bm25.token_count(["b a b c b", "x"]) == 6


def test_terms_stopwords_and_stemming():
    assert words("Don't-stop, O'Brien_2!") == ["don", "t", "stop", "o", "brien_2"]
    bm25 = Bm25()
    assert bm25.terms("The runners were RUNNING to the university") == [
        "runner",
        "run",
        "univers",
    ]
    assert {"the", "don't", "wouldn't"} <= ENGLISH_STOPWORDS and len(ENGLISH_STOPWORDS) == 179
    assert Bm25(stopwords=["RUNNERS"]).terms("the runners") == ["the"]
    assert Bm25(stopwords=[]).terms("the runners") == ["the", "runner"]
    assert Bm25(language="german").stopwords == frozenset()
    assert Bm25(token_max_length=5).terms("short muchlonger") == ["short"]


def test_local_idf_and_scores():
    corpus = [
        "kettles boil water",
        "water is wet",
        "tea needs hot water from a kettle",
        "coffee",
    ]
    bm25 = Bm25().fit(corpus)
    assert bm25.n_docs == 4
    # "water" is in 3 of 4 documents, "kettl" (kettle, kettles) in 2, "coffe" in 1.
    assert bm25.idf("water") == pytest.approx(math.log(1 + (4 - 3 + 0.5) / 3.5))
    assert bm25.idf("kettl") == pytest.approx(math.log(1 + (4 - 2 + 0.5) / 2.5))
    assert bm25.idf(bm25.token_id("unseen")) == pytest.approx(math.log(1 + 4.5 / 0.5))
    [query] = bm25.query_embed("kettle water")
    assert query.as_dict() == pytest.approx(
        {bm25.token_id("kettl"): bm25.idf("kettl"), bm25.token_id("water"): bm25.idf("water")}
    )
    scores = bm25.score("kettle water", corpus)
    docs = list(bm25.embed(corpus))
    np.testing.assert_allclose(scores, [query.dot(d) for d in docs])
    assert scores.argmax() == 0 and scores[3] == 0.0
    # terms: 3 + 2 (water wet) + 5 (tea need hot water kettl) + 1
    assert Bm25().fit(corpus, set_avg_len=True).avg_len == pytest.approx(11 / 4)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        list(Bm25().embed(["fine", None]))
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        list(Bm25().query_embed([3]))
    with pytest.raises(ValueError, match="'polish' has no Snowball stemmer"):
        Bm25(language="polish")
    with pytest.raises(ValueError, match="b=2"):
        Bm25(b=2)
    with pytest.raises(TypeError, match="stopwords is a str"):
        Bm25(stopwords="the")
    with pytest.raises(RuntimeError, match="fit"):
        Bm25().idf("x")


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "py_rust_stemmers", None)
    with pytest.raises(ImportError, match=r"kettle\[bm25\]"):
        Bm25()
