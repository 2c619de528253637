"""The fidelity gate on the user's own retrieval set (``python -m models_bake NAME --eval DATA``).

Instead of kettle's texts, the quantized bake is measured against fp32 on a BEIR folder (read by
kettle.evaluation.data, ranked and scored by kettle.evaluation as ``python -m kettle eval`` does):
``ndcg_ratio`` is the candidate's nDCG@10 over fp32's on the folder's qrels, and the cosine
figures (``mean_cosine``, ``min_cosine``) compare the two models' vectors of every passage and
query. ``top10_agreement`` is the mean share of each query's top 10 passages that both models
retrieve (the pairwise neighbour measure of kettle's own set is quadratic in the corpus), and
``batch_invariance_min_cosine`` embeds the first passages one at a time. The figures' keys are
verify's, so its gates apply unchanged.
"""

from __future__ import annotations

import hashlib
from itertools import islice
from pathlib import Path

import numpy as np

from kettle.evaluation.data import CORPUS, QRELS, QUERIES, BeirSet, load
from kettle.evaluation.run import retrieve

ALONE = 128  # passages embedded one at a time for batch invariance (as verify.ALONE)
KINDS = ("dense", "sparse")
_REFERENCE: dict[tuple, tuple[list, list]] = {}  # the fp32 vectors of the last set measured


def fingerprint(folder: Path) -> str:
    """sha256 over the set's three files: which set gated a bake, and a bake key that changes
    with it."""
    digest = hashlib.sha256()
    for name in (CORPUS, QUERIES, QRELS):
        with open(Path(folder) / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def describe(folder: Path) -> str:
    """The manifest's ``eval_set``: where the set was, its size and its fingerprint."""
    data = load(folder)
    return (
        f"beir:{Path(folder).resolve()} ({len(data.queries)} queries, {len(data)} passages, "
        f"sha256 {fingerprint(folder)[:16]})"
    )


def _cosines(a: list, b: list, dim: int) -> np.ndarray:
    """Cosine of each vector of ``a`` with the same one of ``b`` (sparse ones made dense one
    at a time; 1.0 where both are zero)."""
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if not isinstance(x, np.ndarray):
            x, y = x.to_dense(dim), y.to_dense(dim)
        x, y = x.astype(np.float64), y.astype(np.float64)
        norms = np.linalg.norm(x) * np.linalg.norm(y)
        out[i] = x @ y / norms if norms > 0 else 1.0
    return out


def _run(model, data: BeirSet) -> tuple[list, list]:
    return list(model.passage_embed(data.passages())), list(
        model.query_embed(list(data.queries.values()))
    )


def measure(folder: Path, kind: str, name: str, reference_dir: Path, candidate_dir: Path) -> dict:
    """verify.measure's figures for the bake in ``candidate_dir`` on the BEIR ``folder``."""
    if kind not in KINDS:
        raise ValueError(f"--eval gates dense and sparse models; {name} is a {kind} model")
    from kettle.dense import TextEmbedding
    from kettle.sparse import SparseTextEmbedding

    cls = TextEmbedding if kind == "dense" else SparseTextEmbedding
    data = load(folder)
    reference = cls(name, models_dir=reference_dir)
    model = cls(name, models_dir=candidate_dir)
    dim = getattr(model, "vocab_size", 0) if kind == "sparse" else reference.manifest.dim
    key = (str(Path(folder).resolve()), fingerprint(folder), reference.manifest.fingerprint)
    if key not in _REFERENCE:  # --quantize auto measures several candidates against one fp32
        _REFERENCE.clear()
        _REFERENCE[key] = _run(reference, data)
    ref_passages, ref_queries = _REFERENCE[key]
    passages, queries = _run(model, data)
    cos = _cosines(ref_passages + ref_queries, passages + queries, dim)
    ref_metrics, ref_top = retrieve(kind, ref_passages, ref_queries, data, depth=10)
    metrics, top = retrieve(kind, passages, queries, data, depth=10)
    shared = [len(set(ref_top[q]) & set(top[q])) / max(1, len(ref_top[q])) for q in ref_top]
    texts = list(islice(data.passages(), ALONE))
    alone = [next(iter(model.passage_embed([t], batch_size=1))) for t in texts]
    ref, cand = ref_metrics["ndcg@10"], metrics["ndcg@10"]
    return {
        "n_texts": int(len(cos)),
        "mean_cosine": round(float(cos.mean()), 6),
        "min_cosine": round(float(cos.min()), 6),
        "top10_agreement": round(float(np.mean(shared)), 4),
        "batch_invariance_min_cosine": round(
            float(_cosines(alone, passages[: len(alone)], dim).min()), 6
        ),
        "ndcg10_reference": round(ref, 4),
        "ndcg10_candidate": round(cand, 4),
        "ndcg_ratio": round(cand / ref, 4) if ref > 0 else 1.0,
        "eval_set": describe(folder),
    }
