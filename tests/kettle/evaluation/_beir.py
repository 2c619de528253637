"""Helpers of the eval tests: write a BEIR folder, and BEIR's own evaluation of a full run
(identical ids popped, pytrec_eval, the mean over queries) as the independent reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytrec_eval

from kettle.dense import TextEmbedding


def write_beir(folder: Path, corpus: list, queries: list, qrels: list[tuple]) -> Path:
    """A BEIR folder; items that are str are written as they are (bad lines)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name, items in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        lines = [i if isinstance(i, str) else json.dumps(i) for i in items]
        (folder / name).write_text("".join(line + "\n" for line in lines))
    rows = ["query-id\tcorpus-id\tscore", *("\t".join(map(str, r)) for r in qrels)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


def reference_metrics(folder, scores_of) -> dict[str, float]:
    """BEIR's evaluation of a full run: identical ids popped, pytrec_eval, mean over queries."""
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    queries = {
        q["_id"]: q["text"]
        for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())
    }
    qrels: dict = {}
    for row in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, pid, score = row.split("\t")
        qrels.setdefault(qid, {})[pid] = int(score)
    texts = [
        (c.get("title") + " " + c["text"]).strip() if c.get("title") else c["text"].strip()
        for c in corpus
    ]
    qids = list(qrels)
    scores = scores_of([queries[q] for q in qids], texts)
    run = {
        qid: {c["_id"]: float(s) for c, s in zip(corpus, row, strict=True) if c["_id"] != qid}
        for qid, row in zip(qids, scores, strict=True)
    }
    measures = {"ndcg_cut.10", "recall.10,100", "recip_rank"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    mean = {
        key: sum(v[m] for v in per_query.values()) / len(per_query)
        for key, m in (
            ("ndcg@10", "ndcg_cut_10"),
            ("recall@10", "recall_10"),
            ("recall@100", "recall_100"),
        )
    }
    rr = [v["recip_rank"] if v["recip_rank"] >= 0.1 else 0.0 for v in per_query.values()]
    return mean | {"mrr@10": sum(rr) / len(rr)}


def cosine_scores(model: TextEmbedding):
    def scores(queries, texts):
        q = np.stack(list(model.query_embed(queries))).astype(np.float64)
        d = np.stack(list(model.passage_embed(texts))).astype(np.float64)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return q @ d.T

    return scores
