"""Cold start, side by side: the Lambda handler's import + first /embed answer against the
library's own import + first vector, each from a fresh Python process, runs interleaved; the
median of several runs of each. Also what manifest verification (sha256 of the model's files,
on in the handler) adds to a cold start.

    .venv/bin/python bench/cold_start.py [--models models] [--runs 15] [--quick]

Byte code is compiled first, as deployed. Run by `make bench` (in the project's venv: the
handler needs Powertools). Writes bench/results/cold_start.{json,md}. Tracing is off (POWERTOOLS_TRACE_DISABLED), as on `make serve`
and in a function without active tracing; the issue's target is a ratio of at most 1.3.

Both use one ONNX Runtime thread. numpy's OpenBLAS starts a worker per CPU that spins for ~0.1 s
of CPU after `import numpy`; where the machine's other CPUs are busy it takes time from the process
itself. kettle as it ships pays that, the handler does not (it sets OPENBLAS_NUM_THREADS=1 unless
the environment does: handler/__init__.py), so a third program runs kettle with that setting too
and its ratio is reported beside the issue's. CPU seconds of the timed stretch (every thread) are
reported beside the seconds: the handler's init builds the ONNX Runtime session in a background
thread while its routes import (handler.preload), which hides that time only where a second CPU
is free, so on a busy machine its ratio is higher than on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from machine import cpu_name, versions  # noqa: E402

DENSE = "sentence-transformers/all-MiniLM-L6-v2"
TARGET = 1.3

# Each program prints the seconds from its first statement to the first vector / answer, and the
# CPU seconds of that stretch (every thread of the process).
LIBRARY = """
import time; t, c = time.perf_counter(), time.process_time()
from kettle import TextEmbedding
model = TextEmbedding({name!r}, models_dir={models!r}, threads=1)
vector = next(iter(model.embed(["The kettle is boiling."])))
assert vector.shape[0] > 0
print(time.perf_counter() - t, time.process_time() - c)
"""

# The event and context as Lambda's runtime hands them over (a payload 2.0 request, built inline:
# handler.local's dev server and its imports are no part of a Lambda cold start).
HANDLER = """
import time; t, c = time.perf_counter(), time.process_time()
from handler.app import api_handler
class Context:
    function_name, function_version, memory_limit_in_mb = "kettle-bench", "$LATEST", 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:kettle-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    def get_remaining_time_in_millis(self):
        return 30000
http = {{"method": "POST", "path": "/embed", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
        "userAgent": "bench"}}
event = {{"version": "2.0", "routeKey": "$default", "rawPath": "/embed", "rawQueryString": "",
         "headers": {{"content-type": "application/json"}}, "isBase64Encoded": False,
         "requestContext": {{"accountId": "000000000000", "apiId": "bench", "http": http,
                            "requestId": "bench", "routeKey": "$default", "stage": "$default",
                            "timeEpoch": 0}},
         "body": '{{"inputs": ["The kettle is boiling."]}}'}}
result = api_handler(event, Context())
assert result["statusCode"] == 200, result
print(time.perf_counter() - t, time.process_time() - c)
"""

# Manifest verification alone, in a fresh process (what the load adds with verify on).
VERIFY = """
import time
from kettle import find_model
baked = find_model({name!r}, {models!r}, verify=False)
t = time.perf_counter()
baked.manifest.verify(baked.path)
print(time.perf_counter() - t)
"""


def _run(code: str, env: dict[str, str], cpu: list[float] | None = None) -> float:
    """The seconds the program prints first; the CPU seconds it prints next go to ``cpu``."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"a cold-start run failed:\n{out.stderr[-3000:]}")
    seconds, *cpu_seconds = out.stdout.strip().splitlines()[-1].split()
    if cpu is not None:
        cpu.append(float(cpu_seconds[0]))
    return float(seconds)


def measure(models: str, runs: int, pycache: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KETTLE_MODELS_DIR": models,
        "KETTLE_MODEL": DENSE,
        "KETTLE_THREADS": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    # kettle as it ships; the handler sets OPENBLAS_NUM_THREADS=1 for itself (handler/__init__.py),
    # and a third program runs kettle with that setting too, like for like.
    env.pop("OPENBLAS_NUM_THREADS", None)
    one_blas = {**env, "OPENBLAS_NUM_THREADS": "1"}
    # Byte code as deployed (layers/Makefile compiles the function and the layer): where
    # PYTHONDONTWRITEBYTECODE is set, kettle/ and handler/ would be compiled from source in every
    # run. The warm-up runs write it under a private prefix, never into the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    library_code = LIBRARY.format(name=DENSE, models=models)
    handler_code = HANDLER.format()
    verify_code = VERIFY.format(name=DENSE, models=models)
    # Warm the page cache (and write the byte code) for both.
    _run(library_code, env), _run(handler_code, env), _run(verify_code, env)
    library, library_one_blas, handler, verify = [], [], [], []
    library_cpu: list[float] = []
    handler_cpu: list[float] = []
    for _ in range(runs):  # interleaved: a busy moment hits all alike
        library.append(_run(library_code, env, library_cpu))
        handler.append(_run(handler_code, env, handler_cpu))
        library_one_blas.append(_run(library_code, one_blas))
        verify.append(_run(verify_code, env))
    lib_s, handler_s = statistics.median(library), statistics.median(handler)
    lib_one_blas_s = statistics.median(library_one_blas)
    return {
        "runs": runs,
        "library_s": round(lib_s, 4),
        "handler_s": round(handler_s, 4),
        "ratio": round(handler_s / lib_s, 3),
        "target": TARGET,
        "met": handler_s / lib_s <= TARGET,
        "library_one_blas_thread_s": round(lib_one_blas_s, 4),
        "ratio_one_blas_thread": round(handler_s / lib_one_blas_s, 3),
        "verify_s": round(statistics.median(verify), 4),
        "library_cpu_s": round(statistics.median(library_cpu), 4),
        "handler_cpu_s": round(statistics.median(handler_cpu), 4),
        "library_runs_s": [round(x, 4) for x in library],
        "handler_runs_s": [round(x, 4) for x in handler],
    }


def markdown(result: dict) -> str:
    r = result["cold_start"]
    return "\n".join(
        [
            "# Cold start: handler vs library",
            "",
            f"`{result['command']}` on {result['machine']['cpu']}, {result['date']}; median of "
            f"{r['runs']} fresh processes each, interleaved, 1 thread, tracing off, byte code "
            "compiled (as deployed).",
            "",
            "| from a fresh process | seconds |",
            "|---|---|",
            f"| kettle: import + first vector | {r['library_s']:.3f} |",
            f"| handler: import + first /embed answered | {r['handler_s']:.3f} |",
            f"| ratio (target ≤ {r['target']}) | {r['ratio']:.2f}× ({'met' if r['met'] else '**not met**'}) |",
            f"| of which manifest verification (sha256 of the model files) | {r['verify_s']:.3f} |",
            "| kettle with OPENBLAS_NUM_THREADS=1, as the handler runs numpy | "
            f"{r['library_one_blas_thread_s']:.3f} |",
            f"| ratio to that (like for like) | {r['ratio_one_blas_thread']:.2f}× |",
            f"| CPU seconds of the same stretch, kettle / handler (every thread) | "
            f"{r['library_cpu_s']:.3f} / {r['handler_cpu_s']:.3f} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO / "models"))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 runs (development)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    models = str(Path(args.models).resolve())
    result = {
        "command": "python bench/cold_start.py"
        + (" --quick" if args.quick else "")
        + (f" --runs {args.runs}" if args.runs != 15 and not args.quick else ""),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": {
            "cpu": cpu_name(),
            "cpus_visible": len(os.sched_getaffinity(0)),
            "versions": versions(["onnxruntime", "tokenizers", "numpy", "aws-lambda-powertools"]),
        },
        "cold_start": None,
    }
    with tempfile.TemporaryDirectory(prefix="kettle-pycache-") as pycache:
        result["cold_start"] = measure(models, runs, pycache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "cold_start.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
