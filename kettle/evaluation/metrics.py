"""Retrieval metrics as BEIR reports them through pytrec_eval (trec_eval's definitions).

- Ranking: by score, highest first; equal scores by passage id in reverse string order, as
  trec_eval sorts a run (so a result does not depend on the order the run was written in).
- nDCG@k (``ndcg_cut``): graded gains, ``rel / log2(rank + 1)`` for each passage with rel > 0,
  over the ideal order of the query's judged passages; 0 when a query has no relevant passage.
- Recall@k (``recall``): relevant passages (rel >= 1) in the top k over all relevant ones.
- MRR@k: 1 / rank of the first relevant passage within the top k, else 0 (BEIR's ``mrr``).
- Each is the mean over the judged queries (BEIR's loader keeps only queries its qrels name),
  a query whose qrels hold no relevant passage counting 0, as pytrec_eval reports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def top_indices(scores: np.ndarray, ids: Sequence[str], n: int) -> list[int]:
    """The ``n`` best positions of ``scores`` in trec_eval's order (score down, id down).

    Every position tied with the n-th score is sorted, so the cut at n is exact.
    """
    n = min(n, len(scores))
    if n <= 0:
        return []
    if n < len(scores):
        threshold = np.partition(scores, len(scores) - n)[len(scores) - n]
        candidates = np.flatnonzero(scores >= threshold).tolist()
    else:
        candidates = list(range(len(scores)))
    candidates.sort(key=lambda i: ids[i], reverse=True)
    candidates.sort(key=lambda i: -float(scores[i]))  # stable: ids stay descending within a tie
    return candidates[:n]


def ranked_ids(scores: Mapping[str, float]) -> list[str]:
    """The ids of a {id: score} run in trec_eval's order."""
    return sorted(sorted(scores, reverse=True), key=lambda d: -scores[d])


def ndcg(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    dcg = sum(
        rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if rels.get(d, 0) > 0
    )
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    relevant = sum(1 for r in rels.values() if r >= 1)
    found = sum(1 for d in ranked[:k] if rels.get(d, 0) >= 1)
    return found / relevant if relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> dict[str, float]:
    """``ndcg@k``, ``recall@k``, ``recall@100`` and ``mrr@k``: means over the queries of
    ``qrels`` of the rankings (passage ids, best first; a query missing from ``rankings``
    retrieved nothing)."""
    names = {
        f"ndcg@{k}": ndcg,
        f"recall@{k}": recall,
        "recall@100": recall,
        f"mrr@{k}": reciprocal_rank,
    }
    cuts = {f"ndcg@{k}": k, f"recall@{k}": k, "recall@100": 100, f"mrr@{k}": k}
    totals = dict.fromkeys(names, 0.0)
    for qid, rels in qrels.items():
        ranked = rankings.get(qid, [])
        for name, fn in names.items():
            totals[name] += fn(ranked, rels, cuts[name])
    return {name: total / len(qrels) for name, total in totals.items()}
