"""``embed(..., parallel=N)``: how fast a failing worker start is reported, and what workers pay.

1. Each way a worker fails (a script without the ``__main__`` guard, a model file gone before
   the workers load it, a worker killed in a batch), run as its own script: seconds from the
   ``embed``/``imap`` call to the parent's ``WorkerError``, and the script's whole run.
2. Texts/s on a stream of bench/corpus.py's passages: one process (1 thread, every thread)
   against ``parallel=N`` (N workers of 1 thread, their start-up included), interleaved,
   ``--repeats`` times; the median and the best are printed, the machine's load beside them.

python bench/parallel.py [--models DIR] [--texts 4000] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import corpus
from machine import cpu_name

from kettle.dense import TextEmbedding
from kettle.parallel import WorkerPool
from kettle.session import available_cpus

REPO = Path(__file__).resolve().parents[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

HEAD = """\
import os, shutil, signal, sys, time
from kettle.dense import TextEmbedding
from kettle.parallel import WorkerPool
TEXTS = ["tea kettle water " * (i % 13 + 1) + str(i) for i in range(60)]
def report(kind, error, tb):  # the parent's error, with the seconds since the call
    if __name__ == "__main__":
        print(f"{time.perf_counter() - T0:.2f} s: {kind.__name__}: {error}", flush=True)
sys.excepthook = report
def oom(model, i):
    os.kill(os.getpid(), signal.SIGKILL)
"""

CASES = {
    "no __main__ guard": """\
model = TextEmbedding(threads=1)
T0 = time.perf_counter()
list(model.embed(TEXTS, 4, parallel=2))
""",
    "model file removed": """\
if __name__ == "__main__":
    shutil.copytree(os.environ["BAKE"], os.path.abspath("m/b"))
    model = TextEmbedding(specific_model_path=os.path.abspath("m/b"), threads=1)
    os.remove("m/b/model.onnx")
    T0 = time.perf_counter()
    list(model.embed(TEXTS, 4, parallel=2))
""",
    "worker killed in a batch": """\
if __name__ == "__main__":
    model = TextEmbedding(threads=1)
    T0 = time.perf_counter()
    with WorkerPool(model, 2) as pool:
        list(pool.imap(oom, [(i,) for i in range(4)]))
""",
}


def failing_starts(models: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KETTLE_MODELS_DIR": str(models),
        "BAKE": str(models / MINILM),
    }
    for name, body in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "case.py").write_text(HEAD + body)
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "case.py"],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            wall = time.perf_counter() - start
        said = [line for line in done.stdout.splitlines() if " s: " in line]
        print(f"{name}: exit {done.returncode}, script {wall:.2f} s")
        print(textwrap.indent("\n".join(said) or done.stderr[-2000:], "    "))


def throughput(models: Path, n: int, workers: int, repeats: int) -> None:
    texts = list(corpus.passages(n))
    runs = {
        "one process, 1 thread": dict(threads=1, parallel=None),
        f"one process, {available_cpus()} threads": dict(threads=None, parallel=None),
        f"parallel={workers} (1 thread each)": dict(threads=1, parallel=workers),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    models_by_threads = {
        t: TextEmbedding(models_dir=models, threads=t)
        for t in {r["threads"] for r in runs.values()}
    }
    start = time.perf_counter()
    with WorkerPool(models_by_threads[1], workers):
        pass
    print(f"start and stop {workers} workers: {time.perf_counter() - start:.2f} s")
    for _ in range(repeats):
        for name, run in runs.items():
            model = models_by_threads[run["threads"]]
            start = time.perf_counter()
            for _vector in model.embed(iter(texts), 256, run["parallel"]):
                pass
            seconds[name].append(time.perf_counter() - start)
    print(f"{n} passages, batch_size 256, {cpu_name()}, {available_cpus()} CPUs, ", end="")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    for name, times in seconds.items():
        median, best = statistics.median(times), min(times)
        print(f"  {name:<34} {n / median:7.0f} texts/s median, {n / best:7.0f} best")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-failures", action="store_true")
    args = parser.parse_args()
    models = args.models.resolve()
    if not args.skip_failures:
        failing_starts(models)
    throughput(models, args.texts, args.workers, args.repeats)


if __name__ == "__main__":
    main()
