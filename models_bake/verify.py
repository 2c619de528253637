"""The fidelity gate: the int8 bake against full precision on a fixed evaluation set.

Both models run through kettle's own runtime classes, so what is measured is what users get.
Each model kind has its measure; every measure reports ``mean_cosine``, which the gate checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

EVAL_TEXTS = Path(__file__).with_name("eval_texts.json")


class FidelityError(RuntimeError):
    """The quantized model strays too far from full precision."""


def eval_texts() -> list[str]:
    return json.loads(EVAL_TEXTS.read_text())["texts"]


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (1.0 where both are zero)."""
    dots = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, dots / np.maximum(norms, 1e-30), 1.0)


def neighbour_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each item's top-k neighbours (by cosine, itself excluded) that both agree on."""
    k = min(k, len(a) - 1)
    if k < 1:
        return 1.0

    def top(m: np.ndarray) -> np.ndarray:
        unit = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-30)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def compare_vectors(reference: np.ndarray, candidate: np.ndarray) -> dict:
    cos = row_cosines(reference.astype(np.float64), candidate.astype(np.float64))
    return {
        "n_texts": int(len(cos)),
        "mean_cosine": round(float(cos.mean()), 6),
        "min_cosine": round(float(cos.min()), 6),
        "top10_agreement": round(neighbour_agreement(reference, candidate), 4),
    }


def dense_fidelity(
    name: str, reference_dir: Path, candidate_dir: Path, texts: Sequence[str]
) -> dict:
    from kettle.dense import TextEmbedding

    ref = np.stack(list(TextEmbedding(name, models_dir=reference_dir).embed(texts)))
    model = TextEmbedding(name, models_dir=candidate_dir)
    cand = np.stack(list(model.embed(texts)))
    figures = compare_vectors(ref, cand)
    # Dynamic int8 scales activations per batch, so a text's vector moves a little with the texts
    # batched beside it: record how far (each text alone against the batched run).
    alone = np.stack([next(model.embed([t], batch_size=1)) for t in texts])
    figures["batch_consistency_min_cosine"] = round(float(row_cosines(alone, cand).min()), 6)
    return figures


def top_k_overlap(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    """Mean share of each row's k largest non-zero terms that both rows have in their top k."""
    shares = []
    for a, b in zip(reference, candidate, strict=True):
        ta = {int(i) for i in np.argsort(-a, kind="stable")[:k] if a[i] > 0}
        tb = {int(i) for i in np.argsort(-b, kind="stable")[:k] if b[i] > 0}
        shares.append(len(ta & tb) / max(len(ta), len(tb)) if ta or tb else 1.0)
    return float(np.mean(shares))


def sparse_fidelity(
    name: str, reference_dir: Path, candidate_dir: Path, texts: Sequence[str]
) -> dict:
    """Cosine of the SPLADE vectors as dense ones, top-10/32 term overlap, non-zero counts."""
    from kettle.sparse import SparseTextEmbedding

    def vectors(models_dir: Path) -> np.ndarray:
        model = SparseTextEmbedding(name, models_dir=models_dir)
        return np.stack([v.to_dense(model.vocab_size) for v in model.embed(texts)])

    ref, cand = vectors(reference_dir), vectors(candidate_dir)
    cos = row_cosines(ref.astype(np.float64), cand.astype(np.float64))
    return {
        "n_texts": int(len(cos)),
        "mean_cosine": round(float(cos.mean()), 6),
        "min_cosine": round(float(cos.min()), 6),
        "top10_term_overlap": round(top_k_overlap(ref, cand, 10), 4),
        "top32_term_overlap": round(top_k_overlap(ref, cand, 32), 4),
        "mean_nonzero_reference": round(float((ref > 0).sum(1).mean()), 1),
        "mean_nonzero_candidate": round(float((cand > 0).sum(1).mean()), 1),
    }


def synthetic_images(n: int = 32, seed: int = 0) -> list:
    """Deterministic RGB test images (gradients, blocks, stripes, noise) of assorted sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(48, 160, size=2))
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        style = i % 4
        if style == 0:  # gradients
            a = rng.uniform(-1, 1, size=(3, 2))
            img = np.stack([0.5 + 0.5 * np.sin(3 * (a[c, 0] * x + a[c, 1] * y)) for c in range(3)])
            img = img.transpose(1, 2, 0)
        elif style == 1:  # coloured blocks
            blocks = rng.uniform(0, 1, size=(4, 4, 3))
            img = blocks[np.arange(h)[:, None] * 4 // h, np.arange(w)[None, :] * 4 // w]
        elif style == 2:  # stripes
            freq, phase = rng.uniform(4, 30), rng.uniform(0, 6)
            base = 0.5 + 0.5 * np.sin(freq * (x + y) + phase)
            img = base[..., None] * rng.uniform(0.2, 1, size=3)
        else:  # noise
            img = rng.uniform(0, 1, size=(h, w, 3))
        images.append(Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB"))
    return images


def image_fidelity(
    name: str, reference_dir: Path, candidate_dir: Path, texts: Sequence[str]
) -> dict:
    """Cosines of the image vectors on synthetic images (the texts are not used)."""
    from kettle.image import ImageEmbedding

    images = synthetic_images()
    ref = np.stack(list(ImageEmbedding(name, models_dir=reference_dir).embed(images)))
    cand = np.stack(list(ImageEmbedding(name, models_dir=candidate_dir).embed(images)))
    return compare_vectors(ref, cand) | {"eval_set": f"synthetic_images:{len(images)}"}


def late_interaction_fidelity(
    name: str, reference_dir: Path, candidate_dir: Path, texts: Sequence[str]
) -> dict:
    """Per-token cosines (documents and queries) and MaxSim top-10 agreement."""
    from kettle.late_interaction import LateInteractionTextEmbedding, maxsim_scores

    queries = list(texts[:32])

    def run(models_dir: Path):
        model = LateInteractionTextEmbedding(name, models_dir=models_dir)
        return list(model.embed(texts)), list(model.query_embed(queries))

    (ref_docs, ref_queries), (cand_docs, cand_queries) = run(reference_dir), run(candidate_dir)
    ref_tokens = np.concatenate(ref_docs + ref_queries).astype(np.float64)
    cand_tokens = np.concatenate(cand_docs + cand_queries).astype(np.float64)
    cos = row_cosines(ref_tokens, cand_tokens)
    k = min(10, len(texts))
    shares = []
    for rq, cq in zip(ref_queries, cand_queries, strict=True):
        top_ref = np.argsort(-maxsim_scores(rq, ref_docs), kind="stable")[:k]
        top_cand = np.argsort(-maxsim_scores(cq, cand_docs), kind="stable")[:k]
        shares.append(len(set(top_ref.tolist()) & set(top_cand.tolist())) / k)
    return {
        "n_texts": len(texts),
        "n_queries": len(queries),
        "n_tokens": int(len(cos)),
        "mean_cosine": round(float(cos.mean()), 6),
        "min_cosine": round(float(cos.min()), 6),
        "maxsim_top10_agreement": round(float(np.mean(shares)), 4),
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the mean-centred vectors (1.0 where both are constant)."""
    a, b = a - a.mean(), b - b.mean()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 1.0


def rerank_fidelity(
    name: str, reference_dir: Path, candidate_dir: Path, texts: Sequence[str], n_queries: int = 6
) -> dict:
    """Scores of every eval text as a document for a few short eval texts as queries.

    ``mean_cosine`` is the mean over queries of the cosine of the mean-centred score vectors
    (Pearson's r): a plain cosine of raw logits is near 1 whenever all scores share an offset,
    whatever their order. Also: Spearman's rho, top-1 and top-10 agreement, largest score change.
    """
    from kettle.rerank import TextCrossEncoder

    short = [t for t in texts if 3 <= len(t.split()) <= 12]
    queries = short[:: max(1, len(short) // n_queries)][:n_queries] or list(texts[:1])
    pairs = [(q, d) for q in queries for d in texts]
    shape = (len(queries), len(texts))
    ref = np.reshape(TextCrossEncoder(name, models_dir=reference_dir).rerank_pairs(pairs), shape)
    cand = np.reshape(TextCrossEncoder(name, models_dir=candidate_dir).rerank_pairs(pairs), shape)
    pearson = [_pearson(a, b) for a, b in zip(ref, cand, strict=True)]
    spearman = [_pearson(_ranks(a), _ranks(b)) for a, b in zip(ref, cand, strict=True)]
    top10 = [
        len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / min(10, len(a))
        for a, b in zip(ref, cand, strict=True)
    ]
    return {
        "n_queries": len(queries),
        "n_pairs": len(pairs),
        "mean_cosine": round(float(np.mean(pearson)), 6),
        "min_cosine": round(float(np.min(pearson)), 6),
        "spearman": round(float(np.mean(spearman)), 6),
        "top1_agreement": round(float(np.mean(ref.argmax(1) == cand.argmax(1))), 4),
        "top10_agreement": round(float(np.mean(top10)), 4),
        "max_abs_score_diff": round(float(np.abs(ref - cand).max()), 6),
    }


# kind -> measure(name, reference models_dir, candidate models_dir, texts) -> figures
MEASURES: dict[str, Callable[[str, Path, Path, Sequence[str]], dict]] = {
    "dense": dense_fidelity,
    "sparse": sparse_fidelity,
    "image": image_fidelity,
    "late_interaction": late_interaction_fidelity,
    "rerank": rerank_fidelity,
}


def measure(kind: str, name: str, reference_dir: Path, candidate_dir: Path) -> dict:
    try:
        fn = MEASURES[kind]
    except KeyError:
        raise FidelityError(f"no fidelity measure for {kind} models yet") from None
    figures = fn(name, reference_dir, candidate_dir, eval_texts())
    figures.setdefault("eval_set", EVAL_TEXTS.name)
    return figures


def gate(figures: dict, min_cosine: float) -> None:
    """Raise FidelityError when the mean cosine is under ``min_cosine``."""
    if figures["mean_cosine"] < min_cosine:
        raise FidelityError(
            f"int8 fidelity too low: mean cosine {figures['mean_cosine']:.4f} < {min_cosine} "
            f"(min {figures.get('min_cosine')}); nothing was written. Bake with --quantize none, "
            f"or accept it with --min-cosine {figures['mean_cosine'] - 0.001:.3f}"
        )
