"""One contestant of bench/st_onnx.py, one model, in a fresh process.

python bench/st_onnx_worker.py '<task json>'

Runs under .venv (kettle contestants) or .venv-bench-onnx (sentence-transformers' ONNX backend,
which needs optimum and an older transformers than .venv-bench's torch oracle). Prints one line
``RESULT {json}``. Tasks:
  export      sentence-transformers' own ONNX export of a model folder, then its dynamic int8
              export (``export_dynamic_quantized_onnx_model``) for this CPU's instruction set
  throughput  embed the first ``n`` corpus passages (after a warm-up), timed; then embed the
              reference texts and save their vectors for the fidelity columns
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contestants  # noqa: E402
import corpus  # noqa: E402


def quantization_config(flags: set[str] | None = None, machine: str | None = None) -> str:
    """sentence-transformers' name for this CPU's best int8 kernel set (its own choices)."""
    if (machine or platform.machine()) in ("aarch64", "arm64"):
        return "arm64"
    if flags is None:
        flags = set()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
        except OSError:
            pass
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _session_kwargs(threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return {"provider": "CPUExecutionProvider", "session_options": options}


def export(task: dict) -> dict:
    """Export ``src`` (a sentence-transformers folder) to ONNX in ``dst`` the way its docs show."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    src, dst = Path(task["src"]), Path(task["dst"])
    config = task.get("config") or quantization_config()
    int8_file = f"onnx/model_qint8_{config}.onnx"
    t0 = time.perf_counter()
    if not (dst / "onnx" / "model.onnx").is_file():
        if dst.exists():
            shutil.rmtree(dst)
        model = SentenceTransformer(str(src), device="cpu", backend="onnx")
        model.save_pretrained(str(dst))
    fp32_s = time.perf_counter() - t0
    if not (dst / int8_file).is_file():
        model = SentenceTransformer(str(dst), device="cpu", backend="onnx")
        export_dynamic_quantized_onnx_model(model, config, str(dst))
    return {
        "dst": str(dst),
        "config": config,
        "fp32_file": "onnx/model.onnx",
        "int8_file": int8_file,
        "export_s": round(time.perf_counter() - t0, 1),
        "fp32_export_s": round(fp32_s, 1),
    }


def make(task: dict):
    """The contestant as a user would write it, with ``threads`` threads; (embed, max_length)."""
    name, threads = task["contestant"], task["threads"]
    if name.startswith("kettle-"):
        from kettle import TextEmbedding

        model = TextEmbedding(task["model"], models_dir=task["models_dir"], threads=threads)
        model.load()
        return model.embed, model.manifest.max_length
    if name.startswith("st-onnx-"):
        import torch

        torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        kwargs = _session_kwargs(threads) | {"file_name": task["onnx_file"]}
        model = SentenceTransformer(
            task["st_dir"], device="cpu", backend="onnx", model_kwargs=kwargs
        )

        def embed(texts):
            return iter(model.encode(list(texts), normalize_embeddings=True))

        return embed, model.max_seq_length
    raise ValueError(f"unknown contestant {name!r}")


def throughput(task: dict) -> dict:
    import numpy as np

    texts = list(corpus.read(Path(task["corpus"]), task["n"]))
    t0 = time.perf_counter()
    embed, max_length = make(task)
    load_s = time.perf_counter() - t0
    for _ in embed(texts[:32]):  # warm-up: first-run allocations, thread pool start
        pass
    c0, t0 = time.process_time(), time.perf_counter()
    n = sum(1 for _ in embed(texts))
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "n": n,
        "seconds": seconds,
        "texts_per_s": n / seconds,
        # all threads' CPU time: steadier than wall time when other work shares the CPUs, though
        # it counts ORT's spin-waiting too
        "texts_per_cpu_s": n / cpu_seconds,
        "load_s": load_s,
        "max_length": max_length,
        "peak_rss_mb": contestants.peak_rss_mb(),
        "loadavg_1min": os.getloadavg()[0],
    }
    if task.get("reference_texts"):
        ref = json.loads(Path(task["reference_texts"]).read_text(encoding="utf-8"))["texts"]
        vectors = np.stack([np.asarray(v, dtype=np.float32) for v in embed(ref)])
        np.save(task["vectors_out"], vectors)
    return out


def main() -> None:
    task = json.loads(sys.argv[1])
    result = {"export": export, "throughput": throughput}[task["task"]](task)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
