"""One contestant, one task, one fresh process: the benchmark driver (bench/run.py) starts this.

python bench/contestants.py '<task json>'

It prints one line ``RESULT {json}`` on stdout. Tasks:
  throughput  embed the first ``n`` passages (after a short warm-up), timed; optionally save vectors
  stream      embed up to ``n`` passages streamed from the corpus file, stop at ``time_limit``;
              peak RSS (ru_maxrss) and RSS samples along the way
  kettle_config  kettle int8 with given batching arguments on one slice: speed and peak RSS
  profile     where kettle's time goes: cProfile by function, ORT's per-operator profile

Imports happen inside the task, so each process holds only its own contestant's libraries.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FASTEMBED_NAME = "kettle-bench/all-MiniLM-L6-v2"  # the name FastEmbed registers the local files as
CONTESTANTS = ("kettle-int8", "kettle-fp32", "fastembed", "sentence-transformers")
LABELS = {
    "kettle-int8": "kettle int8",
    "kettle-fp32": "kettle fp32",
    "fastembed": "FastEmbed 0.9.1 (fp32)",
    "fastembed-512": "FastEmbed 0.9.1 (fp32, files as baked: truncates at 512)",
    "sentence-transformers": "sentence-transformers (torch CPU)",
}

Embed = Callable[[Iterable[str]], Iterator]


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: after a vfork+exec Linux carries the
    parent's high-water mark into the child's ru_maxrss, so a big driver would show up here."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make(name: str, paths: dict, threads: int, **kwargs) -> Embed:
    """The contestant used as its README shows, with ``threads`` threads."""
    if name in ("kettle-int8", "kettle-fp32"):
        from kettle import TextEmbedding

        models_dir = paths["int8"] if name == "kettle-int8" else paths["fp32"]
        batch_size = kwargs.pop("batch_size", None)
        model = TextEmbedding(MODEL, models_dir=models_dir, threads=threads, **kwargs)
        model.load()
        if batch_size:
            return lambda texts: model.embed(texts, batch_size=batch_size)
        return model.embed
    if name in ("fastembed", "fastembed-512"):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        TextEmbedding.add_custom_model(
            model=FASTEMBED_NAME,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf=FASTEMBED_NAME),  # never fetched: specific_model_path wins
            dim=384,
            model_file="model.onnx",
        )
        folder = paths["fastembed"] if name == "fastembed" else paths["fp32_dir"]
        model = TextEmbedding(FASTEMBED_NAME, specific_model_path=folder, threads=threads)
        return model.embed
    if name == "sentence-transformers":
        import torch

        torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(paths["st"], device="cpu")
        return lambda texts: iter(model.encode(list(texts), convert_to_numpy=True))
    raise ValueError(f"unknown contestant {name!r}")


def throughput(task: dict) -> dict:
    import numpy as np

    texts = list(corpus.read(Path(task["corpus"]), task["n"]))
    t0 = time.perf_counter()
    embed = make(task["contestant"], task["paths"], task["threads"])
    load_s = time.perf_counter() - t0
    for _ in embed(texts[:64]):  # warm-up: first-run allocations, thread pool start
        pass
    rss_loaded = rss_mb()
    t0 = time.perf_counter()
    vectors = [np.asarray(v, dtype=np.float32) for v in embed(texts)]
    seconds = time.perf_counter() - t0
    if task.get("vectors_out"):
        np.save(task["vectors_out"], np.stack(vectors))
    return {
        "n": len(vectors),
        "seconds": seconds,
        "texts_per_s": len(vectors) / seconds,
        "load_s": load_s,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
    }


def stream(task: dict) -> dict:
    """Stream passages from the corpus file through embed(); keep nothing but a running sum."""
    embed = make(task["contestant"], task["paths"], task["threads"], **task.get("kwargs", {}))
    rss_loaded = rss_mb()
    deadline = time.perf_counter() + task["time_limit"]
    state = {"fed": 0, "cut": False}

    def texts() -> Iterator[str]:
        for text in corpus.read(Path(task["corpus"]), task["n"]):
            if time.perf_counter() > deadline:
                state["cut"] = True
                return
            state["fed"] += 1
            yield text

    done, checksum, samples = 0, 0.0, []
    t0 = time.perf_counter()
    for vector in embed(texts()):
        done += 1
        checksum += float(vector[0])
        if done % 2000 == 0:
            samples.append((done, round(time.perf_counter() - t0, 2), round(rss_mb(), 1)))
    seconds = time.perf_counter() - t0
    return {
        "kwargs": task.get("kwargs", {}),
        "n_asked": task["n"],
        "n_done": done,
        "cut_by_time_limit": state["cut"],
        "time_limit_s": task["time_limit"],
        "seconds": seconds,
        "texts_per_s": done / seconds if seconds else 0.0,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "rss_samples": samples,  # (passages done, seconds, RSS MB)
        "checksum": checksum,
    }


def kettle_config(task: dict) -> dict:
    """kettle int8 on one slice with given batching arguments (batch_size, token_budget, threads;
    ``window`` patches the length-sorting window, a module constant, for this experiment only)."""
    import kettle.encoder as encoder
    from kettle import TextEmbedding

    texts = list(corpus.read(Path(task["corpus"]), task["n"]))
    if task.get("window"):
        encoder.DEFAULT_WINDOW = task["window"]
    model = TextEmbedding(
        MODEL,
        models_dir=task["paths"]["int8"],
        threads=task["threads"],
        token_budget=task["token_budget"],
    )
    model.load()
    for _ in model.embed(texts[:64], batch_size=task["batch_size"]):
        pass
    t0 = time.perf_counter()
    for _ in model.embed(texts, batch_size=task["batch_size"]):
        pass
    seconds = time.perf_counter() - t0
    return {"n": len(texts), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def profile(task: dict) -> dict:
    """cProfile of kettle int8 on the slice, by function; then ORT's own per-operator times for
    the same padded batches kettle runs (int8 and fp32 graphs)."""
    import cProfile
    import pstats

    import onnxruntime as ort

    from kettle import TextEmbedding
    from kettle.batching import plan_batches

    texts = list(corpus.read(Path(task["corpus"]), task["n"]))
    out: dict = {}
    model = TextEmbedding(MODEL, models_dir=task["paths"]["int8"], threads=task["threads"])
    model.load()
    list(model.embed(texts[:64]))
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in model.embed(texts):
        pass
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    wanted = {
        "InferenceSession.run": ("onnxruntime", "run"),
        "tokenizer encode_batch": ("tokenize.py", "encode"),
        "pad to batch (numpy)": ("tokenize.py", "pad"),
        "pool + normalize": ("dense.py", "_last_step"),
        "plan_batches": ("batching.py", "plan_batches"),
    }
    by_part = {}
    for label, (file_part, func) in wanted.items():
        cum = 0.0
        for (filename, _, name), row in stats.stats.items():
            if file_part in filename and name == func:
                cum += row[3]  # cumulative time
        by_part[label] = round(cum, 3)
    out["python_profile"] = {"total_s": round(total, 3), "parts_s": by_part}

    # Per-operator: the same batches kettle would run, through sessions with profiling on.
    encodings = model.tokenizer.encode(texts)
    lengths = [len(e.ids) for e in encodings]
    batches = plan_batches(lengths, 256, model.token_budget)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    out["batches"] = {
        "count": len(batches),
        "real_tokens": sum(lengths),
        "padded_tokens": padded,
        "attention_cells": sum(max(lengths[i] for i in b) ** 2 * len(b) for b in batches),
    }
    feeds = [model.tokenizer.pad([encodings[i] for i in b]) for b in batches]
    for label, key in (("int8", "int8"), ("fp32", "fp32")):
        path = Path(task["paths"][key]) / MODEL / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = task["threads"]
        options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(task["profile_dir"]) / f"ort-{label}")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        session.run(None, {n: feeds[0][n] for n in names})
        t0 = time.perf_counter()
        for feed in feeds:
            session.run(None, {n: feed[n] for n in names})
        seconds = time.perf_counter() - t0
        trace = json.loads(Path(session.end_profiling()).read_text())
        ops: dict[str, float] = {}
        for event in trace:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                op = event.get("args", {}).get("op_name", "?")
                ops[op] = ops.get(op, 0.0) + event["dur"] / 1e6
        op_total = sum(ops.values())
        out[f"ort_ops_{label}"] = {
            "run_s": round(seconds, 3),
            "kernel_s": round(op_total, 3),
            "share": {
                k: round(v / op_total, 3) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])
            },
        }
    return out


# Cold start: ``python -c`` of each, from exec to its first vector. Each prints wall-clock stamps
# (after imports, after the model is loaded, after the first vector) so the driver can split it.
COLD = {
    "kettle-int8": """
import time
from kettle import TextEmbedding
t1 = time.time()
m = TextEmbedding({model!r}, models_dir={int8!r}, threads={threads})
t2 = time.time()
v = next(iter(m.embed(["The quick brown fox jumps over the lazy dog."])))
print("COLD", t1, t2, time.time(), len(v), flush=True)
""",
    "kettle-fp32": """
import time
from kettle import TextEmbedding
t1 = time.time()
m = TextEmbedding({model!r}, models_dir={fp32!r}, threads={threads})
t2 = time.time()
v = next(iter(m.embed(["The quick brown fox jumps over the lazy dog."])))
print("COLD", t1, t2, time.time(), len(v), flush=True)
""",
    "fastembed": """
import time
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
t1 = time.time()
TextEmbedding.add_custom_model(model={fe_name!r}, pooling=PoolingType.MEAN, normalization=True,
    sources=ModelSource(hf={fe_name!r}), dim=384, model_file="model.onnx")
m = TextEmbedding({fe_name!r}, specific_model_path={fastembed!r}, threads={threads})
t2 = time.time()
v = next(iter(m.embed(["The quick brown fox jumps over the lazy dog."])))
print("COLD", t1, t2, time.time(), len(v), flush=True)
""",
    "sentence-transformers": """
import time
import torch
torch.set_num_threads({threads})
from sentence_transformers import SentenceTransformer
t1 = time.time()
m = SentenceTransformer({st!r}, device="cpu")
t2 = time.time()
v = m.encode(["The quick brown fox jumps over the lazy dog."])[0]
print("COLD", t1, t2, time.time(), len(v), flush=True)
""",
}


def cold_code(name: str, paths: dict, threads: int) -> str:
    return COLD[name].format(model=MODEL, fe_name=FASTEMBED_NAME, threads=threads, **paths)


TASKS = {
    "throughput": throughput,
    "stream": stream,
    "kettle_config": kettle_config,
    "profile": profile,
}


def main() -> None:
    task = json.loads(sys.argv[1])
    load_before = os.getloadavg()[0]
    result = TASKS[task["task"]](task)
    result["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
