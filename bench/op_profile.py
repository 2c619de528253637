"""Where an ONNX model's time goes: ONNX Runtime's profiler, summed by operator type.

python bench/op_profile.py MODEL.onnx [MODEL.onnx ...] [--batch 64] [--seq 128] [--threads 2]
    [--runs 4] [--top 12]

Runs each file on one fixed batch of random token ids (all attended) with kettle's session
settings, after a warm-up run, and prints each operator type's share of the kernel time. How the
per-row int8 scheme's own passes (the row-scale Mul, QuantizeLinear, ReduceMax/ReduceMin) compare
with the MatMuls is read here (README, "Choosing the int8 scheme").

It also times the same runs without the profiler. Where outputs are large the profiled run is
several times slower (SPLADE-tiny's int8 bake at 16 x 128 tokens, whose tokens x 30,522 arrays
dominate): read the shares only where the two times agree, as they do for MiniLM.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def profile(path: Path, batch: int, seq: int, threads: int, runs: int) -> tuple[float, float, dict]:
    """Wall seconds per run unprofiled and profiled, and {op type: (kernel microseconds per run,
    node count)}."""
    import numpy as np
    import onnxruntime as ort

    from kettle.session import create_session

    plain = create_session(path, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        options = plain.get_session_options()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {}
        for i in session.get_inputs():
            if "mask" in i.name:
                feeds[i.name] = np.ones((batch, seq), np.int64)
            elif "type" in i.name:
                feeds[i.name] = np.zeros((batch, seq), np.int64)
            else:
                feeds[i.name] = rng.integers(1000, 20000, (batch, seq)).astype(np.int64)
        walls = []
        for timed in (plain, session):
            timed.run(None, feeds)
            t0 = time.perf_counter()
            for _ in range(runs):
                timed.run(None, feeds)
            walls.append((time.perf_counter() - t0) / runs)
        events = json.loads(Path(session.end_profiling()).read_text())
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    n = runs + 1  # the warm-up run is profiled too
    return walls[0], walls[1], {op: (us / n, count[op] // n) for op, us in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for path in args.models:
        wall, profiled, ops = profile(path, args.batch, args.seq, args.threads, args.runs)
        kernel = sum(us for us, _ in ops.values())
        print(
            f"{path}: {wall * 1000:.1f} ms a run ({profiled * 1000:.1f} ms profiled), "
            f"{args.batch} x {args.seq} tokens"
        )
        for op, (us, nodes) in sorted(ops.items(), key=lambda kv: -kv[1][0])[: args.top]:
            print(f"  {op:28s} {us / 1000:8.2f} ms  {100 * us / kernel:5.1f}%  {nodes} nodes")


if __name__ == "__main__":
    main()
