"""The benchmark's table (Markdown) and chart (PNG) from bench/run.py's results."""

from __future__ import annotations

from pathlib import Path

from contestants import LABELS

from kettle.batching import DEFAULT_BATCH_SIZE, DEFAULT_TOKEN_BUDGET, DEFAULT_WINDOW

ORDER = ("kettle-int8", "kettle-fp32", "fastembed", "sentence-transformers")
COLORS = {
    "kettle-int8": "#d9480f",
    "kettle-fp32": "#f08c00",
    "fastembed": "#1c7ed6",
    "sentence-transformers": "#5c940d",
}


def label(key: str) -> str:
    """'kettle-int8 256,1024' -> 'kettle int8, batch_size 256, token_budget 1024'."""
    name, _, settings = key.partition(" ")
    if not settings:
        return LABELS[name]
    bs, tb = settings.split(",")
    return f"{LABELS[name]}, batch_size {bs}, token_budget {tb}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(r: dict) -> str:
    cfg, meta, tp, cold = r["config"], r["corpus"], r["throughput"], r["cold_start"]
    s = r["summary"]
    sl = meta["slice"]
    k = tp["kettle-int8"]["texts_per_s"]
    lines = [
        "# kettle benchmark",
        "",
        f"`{r['command']}` on {r['machine']['cpu']} ({r['machine']['cpus_visible']} CPUs visible), "
        f"{cfg['threads']} threads for every contestant, {r['date']}. Model: "
        "sentence-transformers/all-MiniLM-L6-v2 (max 256 tokens) for all four; FastEmbed runs the "
        "same fp32 ONNX file as kettle fp32. Each figure comes from fresh processes, contestants "
        "interleaved; throughput is the median of "
        f"{cfg['rounds']} rounds. The machine was shared with other work, so ratios are the "
        "figures to read.",
        "",
        f"Corpus: {meta['source']} (seed {meta['seed']}), passages of consecutive sentences with "
        f"lognormal lengths. Slice of {sl['n']}: tokens p10 {sl['p10']}, p50 {sl['p50']}, "
        f"p90 {sl['p90']}, p99 {sl['p99']}, max {sl['max']}; {sl['share_10_70']:.0%} in 10-70; "
        f"{sl['share_over_256']:.1%} past 256 (truncated there); "
        f"{sl['tokens_truncated_256']:,} tokens after truncation.",
        "",
        "| contestant | texts/s | best round | tokens/s | kettle int8 is | peak RSS, slice (MB) "
        "| cold start (s) | cosine to sentence-transformers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ORDER:
        t = tp[name]
        ratio = "—" if name == "kettle-int8" else f"{k / t['texts_per_s']:.1f}×"
        cs = cold.get(name, {}).get("first_vector_s")
        lines.append(
            f"| {LABELS[name]} | {t['texts_per_s']:.0f} | {t.get('best_texts_per_s', 0):.0f} "
            f"| {t['tokens_per_s']:,.0f} | {ratio} "
            f"| {t['peak_rss_mb']:.0f} | {cs:.2f} | "
            f"{r['fidelity']['cosine_to_sentence_transformers'][name]:.4f} |"
        )
    lines += [
        "",
        "Throughput rounds (texts/s): "
        + "; ".join(f"{LABELS[n]} {tp[n]['rounds_texts_per_s']}" for n in ORDER)
        + ". Load average (1 min) before/after each run: "
        + "; ".join(f"{LABELS[n].split(' (')[0]} {tp[n]['loadavg_1min']}" for n in ORDER)
        + ".",
        "",
        "## Targets (issue 2)",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        f"| throughput ≥ 10× FastEmbed | {s['speedup_vs_fastembed']:.1f}× "
        f"| {_yes(s['met']['speedup_vs_fastembed'])} |",
        f"| throughput ≥ 5× sentence-transformers | {s['speedup_vs_sentence_transformers']:.1f}× "
        f"| {_yes(s['met']['speedup_vs_sentence_transformers'])} |",
        f"| cold start ≤ 0.3 s (kettle int8) | {s['cold_start_s']:.3f} s "
        f"| {_yes(s['met']['cold_start_s'])} |",
    ]
    if "stream" in r:
        for key, st in r["stream"].items():
            if not key.startswith("kettle-int8"):
                continue
            cut = f", cut at {st['n_done']:,}" if st["cut_by_time_limit"] else ""
            how = "" if key == "kettle-int8" else f" ({label(key).split(', ', 1)[1]})"
            lines.append(
                f"| peak RSS ≤ 400 MB streaming {st['n_asked']:,} passages{how} | "
                f"{st['peak_rss_mb']:.0f} MB{cut} | {_yes(st['peak_rss_mb'] <= 400)} |"
            )
    fid = r["fidelity"]
    lines.append(
        f"| int8 mean cosine to fp32 ≥ 0.99 | {s['mean_cosine']:.4f} "
        f"| {_yes(s['met']['mean_cosine'])} |"
    )
    lines += [
        "",
        f"kettle's own batching on the same fp32 file is {s['speedup_kettle_fp32_vs_fastembed']:.1f}× "
        f"FastEmbed; int8 adds {s['speedup_int8_vs_fp32']:.2f}× over fp32.",
        "",
        "## Fidelity of the int8 bake",
        "",
        "| set | texts | mean cosine | min cosine | top-10 neighbour agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    a = fid["int8_vs_fp32_slice"]
    lines.append(
        f"| benchmark slice | {a['n_texts']} | {a['mean_cosine']:.4f} | {a['min_cosine']:.4f} "
        f"| {a['top10_agreement']:.3f} |"
    )
    m = fid.get("int8_vs_fp32_manifest")
    if m:
        lines.append(
            f"| manifest ({m['eval_set']}) | {m['n_texts']} | {m['mean_cosine']:.4f} "
            f"| {m['min_cosine']:.4f} | {m['top10_agreement']:.3f} |"
        )
    lines += [
        "",
        "## Cold start: exec to the first vector",
        "",
        f"Median of {cfg['cold_runs']} fresh `python -c` processes (warm page cache), split by "
        "stamps the child prints.",
        "",
        "| contestant | total (s) | interpreter + imports | model load | first embed | runs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, v in cold.items():
        lines.append(
            f"| {LABELS[name]} | {v['first_vector_s']:.3f} | {v['start_and_imports_s']:.3f} "
            f"| {v['load_s']:.3f} | {v['first_embed_s']:.3f} | {v['runs_s']} |"
        )
    if "stream" in r:
        lines += [
            "",
            "## Memory while streaming a generator of passages",
            "",
            "| contestant | passages asked | done | seconds | texts/s | RSS after load (MB) "
            "| peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, v in r["stream"].items():
            done = f"{v['n_done']:,}" + (" (time cap)" if v["cut_by_time_limit"] else "")
            lines.append(
                f"| {label(name)} | {v['n_asked']:,} | {done} | {v['seconds']:.0f} "
                f"| {v['texts_per_s']:.0f} | {v['rss_loaded_mb']:.0f} | {v['peak_rss_mb']:.0f} |"
            )
    if "sweep" in r:
        sw = r["sweep"]
        grid = sw["grid"]
        budgets = sorted({int(key.split(",")[1]) for key in grid})
        sizes = sorted({int(key.split(",")[0]) for key in grid})
        lines += [
            "",
            f"## kettle int8: batch_size × token_budget ({sw['n']} passages, fresh process each, "
            f"median of {cfg['sweep_rounds']})",
            "",
            "texts/s / peak RSS MB / padding added by batching (best in bold; kettle's defaults: "
            f"batch_size {DEFAULT_BATCH_SIZE}, token_budget {DEFAULT_TOKEN_BUDGET}, "
            f"window {DEFAULT_WINDOW})",
            "",
            "| batch_size \\ token_budget | " + " | ".join(str(b) for b in budgets) + " |",
            "|---|" + "---:|" * len(budgets),
        ]
        for bs in sizes:
            cells = []
            for tb in budgets:
                key = f"{bs},{tb}"
                g = grid[key]
                cell = f"{g['texts_per_s']:.0f} / {g['peak_rss_mb']:.0f} / {g['padding']:.0%}"
                cells.append(f"**{cell}**" if key == sw["best"] else cell)
            lines.append(f"| {bs} | " + " | ".join(cells) + " |")
        at = sw["at_best"]
        bs, tb = sw["best"].split(",")
        lines += [
            "",
            f"At the best setting (batch_size {bs}, token_budget {tb}): "
            + ", ".join(
                f"{k} {v['texts_per_s']:.0f} texts/s ({v['peak_rss_mb']:.0f} MB)"
                for k, v in at.items()
            )
            + ". (window = the length-sorting window, a module constant, patched for this run.)",
        ]
    if "profile" in r:
        p = r["profile"]
        py = p["python_profile"]
        b = p["batches"]
        lines += [
            "",
            "## Where kettle int8 spends its time",
            "",
            f"cProfile over the slice ({py['total_s']:.2f} s under the profiler): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in py["parts_s"].items())
            + ".",
            "",
            f"ORT profile batches (the slice planned as one window, batch_size 256, token_budget "
            f"{DEFAULT_TOKEN_BUDGET}): {b['count']}; real tokens {b['real_tokens']:,}, padded "
            f"{b['padded_tokens']:,} ({b['padded_tokens'] / b['real_tokens'] - 1:.1%} padding).",
            "",
            "| ONNX Runtime operator | share, int8 graph | share, fp32 graph |",
            "|---|---:|---:|",
        ]
        i8, f32 = p["ort_ops_int8"]["share"], p["ort_ops_fp32"]["share"]
        for op in list(dict.fromkeys(list(i8)[:8] + list(f32)[:5])):
            lines.append(f"| {op} | {i8.get(op, 0):.1%} | {f32.get(op, 0):.1%} |")
        lines.append(
            f"| kernel time, s | {p['ort_ops_int8']['kernel_s']:.2f} "
            f"| {p['ort_ops_fp32']['kernel_s']:.2f} |"
        )
    v = r["machine"]["versions"]
    lines += [
        "",
        "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if x) + ".",
        f"Whole run: {r['elapsed_s'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def chart(r: dict, slice_counts: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    names = [n for n in ORDER]
    labels = ["kettle\nint8", "kettle\nfp32", "FastEmbed\nfp32", "sentence-\ntransformers"]
    colors = [COLORS[n] for n in names]

    ax = axes[0][0]
    vals = [r["throughput"][n]["texts_per_s"] for n in names]
    bars = ax.bar(labels, vals, color=colors)
    ax.bar_label(bars, fmt="%.0f")
    ax.set_title(f"Throughput, texts/s (higher is better; {r['config']['slice']} passages)")
    ax.margins(y=0.15)

    ax = axes[0][1]
    cold = r["cold_start"]
    vals = [cold[n]["first_vector_s"] for n in names]
    bars = ax.bar(labels, vals, color=colors)
    ax.bar_label(bars, fmt="%.2f s")
    ax.axhline(0.3, color="grey", ls="--", lw=1)
    ax.text(3.45, 0.3, "0.3 s target", ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title("Cold start: exec to first vector, s (lower is better)")
    ax.margins(y=0.2)

    ax = axes[1][0]
    if "stream" in r:
        for name, v in r["stream"].items():
            pts = v["rss_samples"]
            if pts:
                tuned = name.startswith("kettle-int8 ")
                text = label(name).split(" (")[0]
                if tuned:
                    text = "kettle int8, token_budget " + name.split(",")[1]
                ax.plot(
                    [p[0] for p in pts],
                    [p[2] for p in pts],
                    color=COLORS.get(name, "#862e9c" if tuned else "#1c7ed6"),
                    label=f"{text} (peak {v['peak_rss_mb']:.0f} MB)",
                )
        ax.axhline(400, color="grey", ls="--", lw=1)
        ax.text(0, 400, "400 MB target", va="bottom", fontsize=8, color="grey")
        ax.set_xlabel("passages streamed")
        ax.set_ylim(0, max(450, ax.get_ylim()[1]))
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title("RSS while streaming a generator, MB")

    ax = axes[1][1]
    ax.hist(slice_counts, bins=[2**x for x in range(2, 12)], color="#868e96")
    ax.set_xscale("log", base=2)
    ax.axvline(256, color=COLORS["kettle-int8"], ls="--", lw=1)
    ax.text(256, ax.get_ylim()[1] * 0.9, " 256: truncated", fontsize=8)
    ax.set_xlabel("tokens per passage")
    ax.set_title("Corpus: token lengths of the throughput slice")

    fig.suptitle(
        f"all-MiniLM-L6-v2, {r['config']['threads']} threads, {r['machine']['cpu']}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
