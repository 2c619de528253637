"""python -m kettle eval DATA --model M [--model M ...]: compare bakes on your own retrieval set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kettle.evaluation import data as beir
from kettle.evaluation import report
from kettle.evaluation.run import check_kind, evaluate_model, resolve
from kettle.manifest import ManifestError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kettle eval",
        description="Rank a BEIR-format retrieval set with each model and compare nDCG, recall, "
        "MRR, speed and size; writes OUT/eval.json, eval.md and eval.png.",
    )
    p.add_argument(
        "data", metavar="DATA", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv"
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="M",
        help="a baked dense or sparse model: its name or the path of a bake folder (repeatable)",
    )
    p.add_argument(
        "--models-dir", default=None, metavar="DIR", help="where model names are looked up"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("kettle-eval"),
        metavar="DIR",
        help="output folder (kettle-eval)",
    )
    p.add_argument(
        "--k", type=int, default=10, metavar="10", help="the cut of nDCG, recall and MRR (10)"
    )
    p.add_argument(
        "--lambda-memory",
        type=int,
        metavar="MB",
        help="add an estimate of Lambda cost per million passages at this memory size",
    )
    p.add_argument(
        "--rerank",
        metavar="M",
        help="a cross-encoder that reranks each dense model's top candidates",
    )
    p.add_argument(
        "--rerank-depth",
        type=int,
        default=100,
        metavar="N",
        help="candidates reranked per query (100)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        default=None,
        help="ONNX Runtime threads (default: the CPUs this process may use)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for flag, value in (
        ("--k", args.k),
        ("--rerank-depth", args.rerank_depth),
        ("--threads", args.threads),
        ("--lambda-memory", args.lambda_memory),
    ):
        if value is not None and value < 1:
            print(
                f"python -m kettle eval: error: {flag} must be at least 1, got {value}",
                file=sys.stderr,
            )
            return 2
    if args.lambda_memory is not None and not 128 <= args.lambda_memory <= 10240:
        print(
            f"python -m kettle eval: error: --lambda-memory {args.lambda_memory}: Lambda takes "
            "128 to 10240 MB",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(args)
    except (beir.DataError, LookupError, ValueError, ManifestError, OSError) as exc:
        print(f"python -m kettle eval: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from kettle.session import available_cpus

    bakes = []
    for spec in args.model:
        baked = resolve(spec, args.models_dir)
        check_kind(baked, spec)
        bakes.append(baked)
    reranker = None
    if args.rerank:
        reranker = resolve(args.rerank, args.models_dir)
        check_kind(reranker, args.rerank, rerank=True)
    data = beir.load(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or available_cpus()
    results = []
    for baked in bakes:
        dense = baked.manifest.kind == "dense"
        results += evaluate_model(
            baked,
            data,
            k=args.k,
            threads=threads,
            reranker=reranker if dense else None,
            rerank_depth=args.rerank_depth,
            show_progress=not args.quiet,
        )
    table = report.rows(results, args.k)
    costs = None
    notes = [report.recommend(table, args.k)]
    summary = {
        "data": str(Path(args.data)),
        "queries": len(data.queries),
        "passages": len(data),
        "k": args.k,
        "threads": threads,
        "cpu": _cpu(),
    }
    if args.lambda_memory:
        costs = [report.lambda_cost(r, threads, args.lambda_memory) for r in table]
        assumption = report.lambda_assumption(threads, args.lambda_memory)
        notes.append(assumption)
        summary["lambda"] = {
            "memory_mb": args.lambda_memory,
            "assumption": assumption,
            "usd_per_million_passages": [
                {"model": r["model"], "bake": r["bake"], "precision": r["precision"]} | c
                for r, c in zip(table, costs, strict=True)
            ],
        }
    summary["recommendation"] = notes[0]
    print(report.text_table(table, args.k, costs))
    print()
    for note in notes:
        print(note)
    report.write_json(args.out / "eval.json", summary, table)
    report.write_markdown(args.out / "eval.md", summary, table, args.k, costs, notes)
    written = ["eval.json", "eval.md"]
    if report.write_plot(args.out / "eval.png", table, args.k):
        written.append("eval.png")
    else:
        print("eval.png not drawn: matplotlib is not installed (pip install 'kettle[eval]')")
    print(f"wrote {', '.join(str(args.out / w) for w in written)}")
    return 0


def _cpu() -> str:
    from kettle.session import available_cpus

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.partition(':')[2].strip()} ({available_cpus()} CPUs available)"
    except OSError:
        pass
    import platform

    return f"{platform.processor() or platform.machine()} ({available_cpus()} CPUs available)"
