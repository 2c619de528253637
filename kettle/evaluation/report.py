"""What eval writes: rows, the printed table, eval.json, eval.md, eval.png, a Lambda cost
estimate and the one-line recommendation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kettle.evaluation.run import Result

# AWS Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"
# (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA_MB_PER_VCPU = 1769
# Duration price per GB-second, us-east-1, first pricing tier (aws.amazon.com/lambda/pricing).
LAMBDA_USD_PER_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
WITHIN = 0.01  # the recommendation: the smallest bake within 1% nDCG of the best


def rows(results: Sequence[Result], k: int) -> list[dict[str, Any]]:
    """eval.json's rows: exactly these fields, in this order."""
    out = []
    for r in results:
        row: dict[str, Any] = {"model": r.model, "bake": r.bake, "precision": r.precision}
        for name in (f"ndcg@{k}", f"recall@{k}", "recall@100", f"mrr@{k}"):
            row[name] = round(r.metrics[name], 5)
        row |= {
            "texts_per_s": round(r.texts_per_s, 1),
            "query_ms_p50": round(r.query_ms_p50, 2),
            "bake_mb": round(r.bake_mb, 1),
            "dim": r.dim,
        }
        out.append(row)
    return out


def lambda_cost(row: dict, threads: int, memory_mb: int) -> dict[str, float]:
    """USD per million passages embedded on Lambda at ``memory_mb``, per architecture."""
    vcpus = memory_mb / LAMBDA_MB_PER_VCPU
    rate = row["texts_per_s"] / threads * vcpus
    seconds = 1e6 / rate
    return {
        arch: round(seconds * memory_mb / 1024 * price, 4)
        for arch, price in LAMBDA_USD_PER_GB_S.items()
    }


def lambda_assumption(threads: int, memory_mb: int) -> str:
    vcpus = memory_mb / LAMBDA_MB_PER_VCPU
    prices = ", ".join(f"{a} ${p:.10f} per GB-s" for a, p in LAMBDA_USD_PER_GB_S.items())
    return (
        f"Lambda cost assumes {memory_mb} MB = {vcpus:.2f} vCPU (AWS: 1 vCPU per "
        f"{LAMBDA_MB_PER_VCPU:,} MB), this machine's measured rate per thread ({threads} "
        f"thread(s)) scaled linearly to those vCPUs, and duration at {prices} (us-east-1, first "
        "tier); request charges and cold starts are left out"
    )


def recommend(table: Sequence[dict], k: int) -> str:
    """The smallest bake within 1% nDCG@k of the best, as one line."""
    key = f"ndcg@{k}"
    best = max(table, key=lambda r: r[key])
    close = [r for r in table if r[key] >= best[key] * (1 - WITHIN)]
    pick = min(close, key=lambda r: (r["bake_mb"], -r["texts_per_s"]))
    head = (
        f"recommended: {pick['model']} ({pick['precision']}, {pick['bake_mb']} MB, {pick['bake']})"
    )
    if pick is best:
        return f"{head}: the best nDCG@{k} ({best[key]:.4f}) and the smallest bake within 1% of it"
    return (
        f"{head}: nDCG@{k} {pick[key]:.4f}, the smallest bake within 1% of the best "
        f"({best[key]:.4f}, {best['model']} {best['precision']})"
    )


COLUMNS = [
    ("model", "model"),
    ("precision", "precision"),
    ("ndcg@{k}", "nDCG@{k}"),
    ("recall@{k}", "R@{k}"),
    ("recall@100", "R@100"),
    ("mrr@{k}", "MRR@{k}"),
    ("texts_per_s", "passages/s"),
    ("query_ms_p50", "query ms p50"),
    ("bake_mb", "bake MB"),
    ("dim", "dim"),
]


def _cells(table: Sequence[dict], k: int, costs: list[dict] | None) -> tuple[list, list]:
    heads = [h.format(k=k) for _, h in COLUMNS]
    body = []
    for i, row in enumerate(table):
        cells = []
        for key, _ in COLUMNS:
            v = row[key.format(k=k)]
            cells.append(
                f"{v:.4f}"
                if isinstance(v, float) and key.startswith(("ndcg", "recall", "mrr"))
                else str(v)
            )
        if costs:
            cells += [f"${costs[i][a]:.2f}" for a in costs[i]]
        body.append(cells)
    if costs:
        heads += [f"$/1M passages {a}" for a in costs[0]]
    return heads, body


def text_table(table: Sequence[dict], k: int, costs: list[dict] | None = None) -> str:
    heads, body = _cells(table, k, costs)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(table: Sequence[dict], k: int, costs: list[dict] | None = None) -> str:
    heads, body = _cells(table, k, costs)
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def write_json(path: Path, summary: dict, table: Sequence[dict]) -> None:
    path.write_text(json.dumps(summary | {"rows": list(table)}, indent=1) + "\n")


def write_markdown(
    path: Path, summary: dict, table: Sequence[dict], k: int, costs, notes: list[str]
) -> None:
    lines = [
        f"# Retrieval evaluation: {summary['data']}",
        "",
        f"{summary['queries']} queries, {summary['passages']} passages; {summary['threads']} "
        f"thread(s) on {summary['cpu']}.",
        "",
        markdown_table(table, k, costs),
        "",
        *[f"{n}\n" for n in notes],
    ]
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_plot(path: Path, table: Sequence[dict], k: int) -> bool:
    """Quality against speed and against size, one labelled point per bake; False when
    matplotlib is not installed (``pip install 'kettle[eval]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    key = f"ndcg@{k}"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, x, label in (
        (axes[0], "texts_per_s", "passages / s (this machine)"),
        (axes[1], "bake_mb", "bake size (MB)"),
    ):
        for row in table:
            ax.scatter(row[x], row[key], s=36)
            ax.annotate(
                f"{row['model'].rsplit('/', 1)[-1]}\n{row['precision']}",
                (row[x], row[key]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
            )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.2)
    axes[0].set_ylabel(f"nDCG@{k}")
    fig.suptitle(
        f"nDCG@{k} against speed and size: up and right is better on the left, up and left on the right",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True
