"""HybridIndex mechanics with small stand-in encoders (no models): candidates, fusion, BM25 IDF,
rerank, ids, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from kettle.bm25 import Bm25
from kettle.hybrid import HybridIndex, reciprocal_rank_fusion
from kettle.rerank import RerankResult
from kettle.sparse import SparseEmbedding

DOCS = [
    "kettles boil water",
    "water is wet",
    "tea needs hot water from a kettle",
    "coffee beans",
    "a kettle of fish",
]


class LetterDense:
    """Unit vectors of letter counts: a dense 'model' whose scores are easy to reason about."""

    model_name = "letters"

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(26, np.float32)
        for ch in text.lower():
            if "a" <= ch <= "z":
                v[ord(ch) - 97] += 1
        return v / max(np.linalg.norm(v), 1e-9)

    def passage_embed(self, texts, batch_size=64):
        return (self._vec(t) for t in texts)

    def query_embed(self, texts, batch_size=64):
        return (self._vec(t) for t in texts)


class WordSparse:
    """Sparse vectors of word lengths as term ids: weight 1 per distinct word length."""

    model_name = "lengths"

    def passage_embed(self, texts, batch_size=64):
        return (SparseEmbedding.from_dict({len(w): 1.0 for w in t.split()}) for t in texts)

    query_embed = passage_embed


class ShortestFirst:
    """A 'reranker' that prefers short documents; it records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def rank(self, query, documents, top_n=None):
        self.calls.append((query, list(documents)))
        order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
        return [RerankResult(i, -float(len(documents[i]))) for i in order][:top_n]


def test_fused_ranks_follow_each_retriever():
    index = HybridIndex(dense=LetterDense(), sparse=[WordSparse(), Bm25()])
    assert index.add(DOCS) == [0, 1, 2, 3, 4]
    query = "boiling water in a kettle"
    per = index.scores(query)
    assert set(per) == {"dense", "sparse:lengths", "bm25"}
    hits = index.search(query, top_k=5, candidates=5)
    lists = {
        n: [int(r) for r in np.argsort(-s, kind="stable") if n == "dense" or s[r] > 0]
        for n, s in per.items()
    }
    want = reciprocal_rank_fusion(list(lists.values()))
    assert [(h.id, h.fused) for h in hits] == [(r, pytest.approx(s)) for r, s in want]
    for h in hits:
        assert h.score == h.fused and h.document == DOCS[h.id]
        assert h.ranks == {n: lst.index(h.id) + 1 for n, lst in lists.items() if h.id in lst}


def test_bm25_in_the_index_uses_idf_of_its_documents():
    index = HybridIndex(sparse=Bm25())
    index.add(DOCS)
    for query in ("kettle water", "coffee", "fish and tea"):
        np.testing.assert_allclose(
            index.scores(query)["bm25"], Bm25().fit(DOCS).score(query, DOCS), rtol=1e-6
        )
    assert [h.document for h in index.search("coffee")] == ["coffee beans"]  # scores > 0 only


def test_weights_and_candidates():
    index = HybridIndex(dense=LetterDense(), sparse=Bm25())
    index.add(DOCS)
    only_bm25 = index.search("fish", top_k=5, weights={"dense": 0.0})
    assert [h.document for h in only_bm25] == ["a kettle of fish"]  # the one doc with 'fish'
    dense_rank = 1 + int(
        np.argsort(-index.scores("fish")["dense"], kind="stable").tolist().index(4)
    )
    assert only_bm25[0].ranks == {"bm25": 1, "dense": dense_rank}  # ranks say where, weights 0
    few = index.search("water", top_k=10, candidates=2)
    assert len(few) <= 4 and all(set(h.ranks.values()) <= {1, 2} for h in few)
    with pytest.raises(ValueError, match="unknown retrievers \\['splade'\\]"):
        index.search("x", weights={"splade": 1.0})


def test_rerank_stage():
    reranker = ShortestFirst()
    index = HybridIndex(dense=LetterDense(), sparse=Bm25(), reranker=reranker)
    index.add(DOCS)
    fused = index.search("kettle water", top_k=5, candidates=3, rerank=False)
    assert reranker.calls == []
    hits = index.search("kettle water", top_k=2, candidates=3)
    query, pool = reranker.calls[-1]
    assert query == "kettle water" and pool == [h.document for h in fused[:3]]
    assert [h.document for h in hits] == sorted(pool, key=len)[:2]
    assert [h.score for h in hits] == [-float(len(h.document)) for h in hits]
    assert {h.id: h.fused for h in hits} == {
        h.id: h.fused for h in fused if h.id in {x.id for x in hits}
    }
    with pytest.raises(ValueError, match="no reranker"):
        HybridIndex(sparse=Bm25()).search("x", rerank=True)


def test_ids_and_incremental_adds():
    one = HybridIndex(dense=LetterDense(), sparse=Bm25())
    one.add(DOCS)
    two = HybridIndex(dense=LetterDense(), sparse=Bm25())
    two.add(DOCS[:2], ids=["a", "b"])
    two.add(DOCS[2:], ids=["c", "d", "e"])
    assert len(two) == 5 and two.ids == ["a", "b", "c", "d", "e"]
    for q in ("kettle", "wet water"):
        assert [(h.id, h.fused) for h in two.search(q)] == [
            ("abcde"[h.id], pytest.approx(h.fused)) for h in one.search(q)
        ]
    with pytest.raises(ValueError, match=r"ids\[0\] = 'a' is already in the index"):
        two.add(["x"], ids=["a"])
    with pytest.raises(ValueError, match=r"ids\[1\] = 'z' is already"):
        two.add(["x", "y"], ids=["z", "z"])
    with pytest.raises(ValueError, match="1 ids for 2 documents"):
        two.add(["x", "y"], ids=["q"])


def test_bad_input_and_edges():
    index = HybridIndex(dense=LetterDense(), sparse=Bm25())
    assert index.search("anything") == []
    with pytest.raises(TypeError, match=r"documents\[1\] is NoneType"):
        index.add(["fine", None])
    assert len(index) == 0  # nothing half-added
    index.add(DOCS)
    with pytest.raises(TypeError, match="query is int"):
        index.search(3)
    with pytest.raises(ValueError, match="top_k and candidates"):
        index.search("x", top_k=0)
    with pytest.raises(ValueError, match="needs a dense model, a sparse encoder"):
        HybridIndex()
