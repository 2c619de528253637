"""Choose the int8 scheme: fidelity and speed of each scheme, side by side, on this CPU.

python bench/quant_schemes.py [MODEL] [--rounds N] [--threads 2] [--json OUT] [--md OUT] [--quick]
    [--schemes int8,int8-dynamic,...] [--cache DIR]

Bakes MODEL's fp32 graph once, quantizes it with every scheme of models_bake.quantize.SCHEMES,
measures each against fp32 with the bake's own gate figures (models_bake.verify: broad set, batch
invariance, nDCG@10 ratio) and times them interleaved (round after round, every model in turn,
best round kept: the machine is shared) on the benchmark corpus (bench/corpus.py). int8 kernels
differ by CPU (VNNI or not, arm64): run it on the machine you deploy to. MODEL may also be one of
bench/random_models.py's random stand-ins: the MiniLM-shaped reranker (timed on (query, passage)
pairs) or the BERT-base-shaped SPLADE. For a model with sentence-transformers reference vectors
(tests/fixtures/st_reference_*.json: MiniLM, MPNet) each row also gives its mean / min cosine to
sentence-transformers fp32 on those held-out texts ("vs ST"). The per-row int8 schemes are smoothed
with activation ranges calibrated as the bake does; "int8-unsmoothed" is the same without.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import corpus, random_models  # noqa: E402
from bench.machine import cpu_name  # noqa: E402
from kettle.registry import get_model  # noqa: E402
from models_bake import bake as b  # noqa: E402
from models_bake import quantize as q  # noqa: E402
from models_bake import rewrites, verify  # noqa: E402

RUNNERS = {
    "dense": "kettle.dense:TextEmbedding",
    "sparse": "kettle.sparse:SparseTextEmbedding",
    "rerank": "kettle.rerank:TextCrossEncoder",
}


def _hidden(model_dir: Path) -> int:
    """The hidden size in a model's config.json (0 when it has none): a sparse model's rows add
    the per-row scheme with the vocabulary head the other way than the default takes for it
    (quantize.QuantScheme.pooled_head_max_hidden: per token and pooled by kettle, or transposed
    and pooled in the graph)."""
    config = model_dir / "config.json"
    return int(json.loads(config.read_text()).get("hidden_size", 0)) if config.is_file() else 0


def runner(kind: str):
    module, cls = RUNNERS[kind].split(":")
    return getattr(__import__(module, fromlist=[cls]), cls)


def workload(kind: str, n: int) -> list:
    """What one timed round runs: ``n`` bench passages, or for a reranker ``n`` (query, passage)
    pairs, 16 passages per query, each query the first ten words of a later passage (random
    spans: it may share words with a document, which changes nothing in what is timed)."""
    if kind != "rerank":
        return list(corpus.passages(n))
    texts = list(corpus.passages(n + n // 4 + 8))
    queries = [" ".join(t.split()[:10]) for t in texts[n:] if len(t.split()) >= 4]
    return [(queries[i // 16], doc) for i, doc in enumerate(texts[:n])]


def run_once(kind: str, model, items: list) -> None:
    if kind == "rerank":
        model.rerank_pairs(items)
    else:
        list(model.embed(items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=256, help="bench corpus passages per round")
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    parser.add_argument("--md", type=Path, help="write the table here as Markdown")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 128 passages")
    parser.add_argument(
        "--schemes",
        help="comma-separated rows to measure besides fp32 (default: every scheme, and "
        "int8-unsmoothed)",
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download cache")
    parser.add_argument(
        "--models",
        type=Path,
        default=Path("models"),
        help="where make models baked MODEL: an int8-mixed bake there adds its row (the MatMuls "
        "its search kept in fp32)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.texts = min(args.rounds, 2), min(args.texts, 128)
    logging.getLogger().setLevel(logging.ERROR)
    name = args.model
    if name in random_models.MODELS:  # a random stand-in of a real model's shape
        random_models.register(name)
    description = get_model(name)
    fetched = b._fetch_first(description, description.sources, args.cache.resolve())
    reference = _st_reference(name)
    bench_texts = workload(description.kind, args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, _ = b._fp32_graph(description, fetched, work)
        fused, _ = b._fuse(description, fetched, fp32, work)
        io = b._onnx_io(fused)
        dirs = {"fp32 (fused)": work / "fp32"}
        b._write_model_dir(dirs["fp32 (fused)"] / name, fused, fetched, description, io, None, {})
        rows = {"fp32 (fused)": {"MB": round(fused.stat().st_size / 1e6, 1)}}
        if reference:
            rows["fp32 (fused)"] |= _vs_reference(reference, name, work / "fp32", args.threads)
        schemes = dict(q.SCHEMES)
        schemes["int8-unsmoothed"] = replace(q.DEFAULT_SCHEME, smooth_alpha=0.0)
        if (kept := _mixed_keep(args.models / name)) is not None:
            schemes[q.MIXED] = replace(q.DEFAULT_SCHEME, keep_fp32=kept)
        if description.kind == "sparse":  # the vocabulary head the other way, side by side
            pooled = _hidden(fetched.path) <= q.DEFAULT_SCHEME.pooled_head_max_hidden
            other = {"pooled_head_max_hidden": 0 if pooled else 1 << 30}
            for base in ["int8"] + ([q.MIXED] if kept is not None else []):
                label = f"{base}, head {'not pooled' if pooled else 'pooled'}"
                schemes[label] = replace(schemes[base], **other)
        if args.schemes:
            wanted = args.schemes.split(",")
            schemes = {label: schemes[label] for label in wanted}
        ranges = {}
        for label, scheme in schemes.items():
            src = fp32
            if scheme.fused:
                src, _ = b._fuse(description, fetched, fp32, work, scheme.multi_head_attention)
            path = work / f"{label}.onnx"
            if scheme.method == "rowwise" and scheme.smooth_alpha > 0 and src not in ranges:
                texts = verify.calibration_texts()
                model_dir = dirs["fp32 (fused)"] / name
                batches = b.calibration_batches(model_dir, description, texts)
                ranges[src] = rewrites.activation_ranges(src, batches)
            q.quantize_int8(src, path, scheme, description.kind, ranges.get(src))
            dirs[label] = work / label
            b._write_model_dir(
                dirs[label] / name, path, fetched, description, b._onnx_io(path), None, {}
            )
            figures = verify.measure(description.kind, name, dirs["fp32 (fused)"], dirs[label])
            failed = verify.gate_failures(figures, verify.TARGET_MEAN_COSINE, verify.TARGET_GATES)
            rows[label] = {
                key: figures.get(key)
                for key in (
                    "mean_cosine",
                    "min_cosine",
                    "top10_agreement",
                    "batch_invariance_min_cosine",
                    "ndcg_ratio",
                )
            } | {
                "MB": round(path.stat().st_size / 1e6, 1),
                "gate": "pass" if not failed else "; ".join(failed),
            }
            if reference:
                rows[label] |= _vs_reference(reference, name, dirs[label], args.threads)
            print(f"measured {label}", file=sys.stderr, flush=True)
        cls = runner(description.kind)
        models = {label: cls(name, models_dir=d, threads=args.threads) for label, d in dirs.items()}
        for m in models.values():
            run_once(description.kind, m, bench_texts[:32])
        times = {label: [] for label in models}
        for _ in range(args.rounds):
            for label, m in models.items():
                t0 = time.perf_counter()
                run_once(description.kind, m, bench_texts)
                times[label].append(time.perf_counter() - t0)
        base = len(bench_texts) / min(times["fp32 (fused)"])
        for label, t in times.items():
            rate = len(bench_texts) / min(t)
            rows[label] |= {"texts_per_s": round(rate, 1), "vs_fp32": round(rate / base, 2)}
        for d in dirs.values():
            shutil.rmtree(d)
    result = {
        "model": name,
        "cpu": cpu_name(),
        "threads": args.threads,
        "rounds": args.rounds,
        "bench_texts": len(bench_texts),
        "unit": "pairs" if description.kind == "rerank" else "passages",
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    print(table)
    if args.md:
        args.md.write_text(
            f"# int8 schemes: {name}\n\n`python bench/quant_schemes.py {name}` (run by `make bench`)"
            f" on {result['cpu']}.\n\n{table}\n"
        )


def _st_reference(name: str):
    """(texts, vectors) of sentence-transformers fp32 for ``name``, or None when there is none."""
    from tests import st_reference

    return st_reference.load(name)[:2] if name in st_reference.NAMES else None


def _vs_reference(reference, name: str, models_dir: Path, threads: int) -> dict:
    """Mean / min cosine of a bake's vectors to sentence-transformers fp32 (held-out texts)."""
    import numpy as np

    from kettle.dense import TextEmbedding

    texts, vectors = reference
    ours = np.stack(list(TextEmbedding(name, models_dir=models_dir, threads=threads).embed(texts)))
    cos = verify.row_cosines(vectors.astype(np.float64), ours.astype(np.float64))
    return {
        "st_mean_cosine": round(float(cos.mean()), 5),
        "st_min_cosine": round(float(cos.min()), 5),
    }


def _mixed_keep(bake: Path) -> tuple[str, ...] | None:
    """The fp32 MatMuls of an int8-mixed bake in ``bake`` (None when it is not one)."""
    manifest = bake / "manifest.json"
    if not manifest.exists():
        return None
    quantization = json.loads(manifest.read_text()).get("quantization") or {}
    if quantization.get("scheme") != q.MIXED:
        return None
    return tuple(quantization["keep_fp32"])


def markdown(result: dict) -> str:
    cols = ["mean_cosine", "min_cosine", "top10_agreement", "batch_invariance_min_cosine"]
    cols += ["ndcg_ratio", "texts_per_s", "vs_fp32", "MB"]
    per_s = "pairs/s" if result.get("unit") == "pairs" else "texts/s"
    heads = ["mean cos", "min cos", "top10", "alone/batch", "nDCG", per_s, "x fp32", "MB"]
    if any("st_mean_cosine" in row for row in result["rows"].values()):
        cols[2:2] = ["st_mean_cosine", "st_min_cosine"]
        heads[2:2] = ["mean cos vs ST", "min cos vs ST"]
    lines = [
        f"{result['model']} on {result['cpu']}, {result['threads']} threads, best of "
        f"{result['rounds']} rounds of {result['bench_texts']} {result.get('unit', 'passages')}",
        "",
        f"| scheme | {' | '.join(heads)} | gate (mean >= {verify.TARGET_MEAN_COSINE}, min >= "
        f"{verify.TARGET_GATES['min_cosine']}) |",
        "|---" * (len(heads) + 2) + "|",
    ]
    for label, row in result["rows"].items():
        cells = ["" if row.get(c) is None else str(row[c]) for c in cols]
        lines.append(f"| {label} | {' | '.join(cells)} | {row.get('gate', '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
