"""kettle.evaluation.metrics: hand-computed cases, then pytrec_eval (trec_eval's own C code, the
library BEIR reports through) on a random set with graded relevance and tied scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval

from kettle.evaluation.metrics import evaluate, ranked_ids, top_indices


def test_graded_ndcg_recall_mrr_by_hand():
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    ranked = ranked_ids({"x": 0.9, "b": 0.8, "a": 0.7, "c": 0.6})  # x b a c
    m = evaluate({"q": ranked}, qrels, k=10)
    dcg = 1 / math.log2(3) + 2 / math.log2(4)  # b at rank 2 (gain 1), a at rank 3 (gain 2)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)  # a then b
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)  # 0.6199
    assert m["recall@10"] == 1.0 and m["recall@100"] == 1.0
    assert m["mrr@10"] == 0.5
    m2 = evaluate({"q": ranked}, qrels, k=2)
    assert m2["ndcg@2"] == pytest.approx((1 / math.log2(3)) / idcg)
    assert m2["recall@2"] == 0.5  # b found, a (rank 3) not
    m1 = evaluate({"q": ranked}, qrels, k=1)
    assert m1["mrr@1"] == 0.0 and m1["ndcg@1"] == 0.0


def test_ties_go_by_id_in_reverse_order_as_trec_eval():
    # Equal scores: trec_eval ranks "c" before "b" before "a" whatever the run's order.
    assert ranked_ids({"a": 1.0, "b": 1.0, "c": 1.0}) == ["c", "b", "a"]
    m = evaluate({"q": ranked_ids({"a": 1.0, "b": 1.0, "c": 1.0})}, {"q": {"a": 1}}, k=10)
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(4))
    # The cut at n sorts every passage tied with the n-th score, not the first found.
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0])
    assert top_indices(scores, ["a", "b", "c", "d", "e"], 2) == [3, 2]
    assert top_indices(scores, ["a", "b", "c", "d", "e"], 9) == [3, 2, 1, 0, 4]


def test_a_query_without_relevant_passages_counts_zero():
    qrels = {"q1": {"a": 1}, "q2": {"a": 0}}
    m = evaluate({"q1": ["a"], "q2": ["a"]}, qrels, k=10)
    assert m == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
    # A judged query with no ranking at all (nothing retrieved) also counts, as 0.
    assert evaluate({"q1": ["a"]}, qrels, k=10)["ndcg@10"] == 0.5


def test_against_pytrec_eval_on_a_random_graded_set():
    rng = np.random.default_rng(0)
    ids = [f"d{i:03d}" for i in rng.permutation(300)]
    qrels, run, ranked = {}, {}, {}
    for q in range(40):
        judged = rng.choice(len(ids), size=int(rng.integers(1, 12)), replace=False)
        qrels[f"q{q}"] = {ids[j]: int(rng.integers(0, 4)) for j in judged}
        # one decimal: many ties, including at the cut of 10 and 100
        scores = np.round(rng.normal(size=len(ids)), 1)
        for j in judged:
            scores[j] += 0.3 * qrels[f"q{q}"][ids[j]]
        scores = np.round(scores, 1)
        run[f"q{q}"] = {d: float(s) for d, s in zip(ids, scores, strict=True)}
        ranked[f"q{q}"] = [ids[i] for i in top_indices(scores, ids, 100)]
    ours = evaluate(ranked, qrels, k=10)
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.10", "recall.10,100", "recip_rank"}
    )
    per_query = evaluator.evaluate(run)  # the whole run: trec_eval ranks it itself
    assert len(per_query) == len(qrels)

    def mean(f):
        return sum(f(v) for v in per_query.values()) / len(per_query)

    assert ours["ndcg@10"] == pytest.approx(mean(lambda v: v["ndcg_cut_10"]), abs=1e-12)
    assert ours["recall@10"] == pytest.approx(mean(lambda v: v["recall_10"]), abs=1e-12)
    assert ours["recall@100"] == pytest.approx(mean(lambda v: v["recall_100"]), abs=1e-12)
    # MRR@10 is the reciprocal rank when the first relevant passage is in the top 10, else 0.
    rr10 = mean(lambda v: v["recip_rank"] if v["recip_rank"] >= 0.1 else 0.0)
    assert ours["mrr@10"] == pytest.approx(rr10, abs=1e-12)
    assert 0 < ours["ndcg@10"] < 1  # not a degenerate set
