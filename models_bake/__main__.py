"""python -m models_bake MODEL [--out DIR] [--quantize int8|auto|...|none] [--min-cosine X] [--gate K=V]"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from kettle.registry import MODELS, Source, UnknownModelError
from models_bake.bake import BakeError, bake
from models_bake.sources import SourceError
from models_bake.verify import FidelityError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models_bake",
        description="Fetch a model, convert it to ONNX, quantize it to int8, check its fidelity "
        "and write DIR/<model>/ with model.onnx, tokenizer files and manifest.json.",
    )
    parser.add_argument("model", nargs="?", help="a model name from the registry (--list)")
    parser.add_argument("--out", type=Path, default=Path("models"), help="output folder (models/)")
    parser.add_argument(
        "--quantize",
        choices=["int8", "int8-dynamic", "int8-blockwise", "auto", "none"],
        default="int8",
        help="int8: per-row dynamic, batch-invariant (default); int8-dynamic: per-batch scales, "
        "not batch-invariant; int8-blockwise: weight-only MatMulNBits; auto: the fastest scheme "
        "that passes the gate, else fp32; none: fp32",
    )
    parser.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one fidelity gate (min_cosine, top10_agreement, "
        "batch_invariance_min_cosine, ndcg_ratio); repeatable",
    )
    parser.add_argument(
        "--min-cosine", type=float, default=0.99, help="fidelity gate: lowest mean cosine (0.99)"
    )
    parser.add_argument(
        "--source", type=Path, help="bake from this local directory instead of the registry's"
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download cache")
    parser.add_argument("--force", action="store_true", help="bake even when up to date")
    parser.add_argument("--list", action="store_true", help="list the models kettle knows")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("models_bake: %(message)s"))
    log = logging.getLogger("models_bake")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs per tensor
    if args.list or not args.model:
        for m in MODELS:
            print(f"{m.name:45} {m.kind:16} dim={m.dim:<6} {m.sources[0].type}:{m.sources[0].ref}")
        return 0 if args.list else 2
    source = Source("local", str(args.source.resolve())) if args.source else None
    gates = {}
    for item in args.gate:
        key, _, value = item.partition("=")
        try:
            gates[key] = float(value)
        except ValueError:
            parser.error(f"--gate {item!r}: expected KEY=NUMBER")
    problem = _unwritable(args.out)
    if problem:
        print(f"models_bake: error: --out {args.out}: {problem}", file=sys.stderr)
        return 1
    try:
        result = bake(
            args.model,
            out=args.out,
            quantize=args.quantize,
            min_cosine=args.min_cosine,
            cache=args.cache,
            source=source,
            force=args.force,
            gates=gates,
        )
    except (BakeError, FidelityError, SourceError, UnknownModelError) as exc:
        print(f"models_bake: error: {exc}", file=sys.stderr)
        return 1
    m = result.manifest
    state = "up to date" if result.skipped else f"baked in {result.seconds:.1f}s"
    print(f"{m.name}: {state} -> {result.path}")
    if m.fidelity:
        print("fidelity: " + json.dumps(m.fidelity, sort_keys=True))
    return 0


def _unwritable(out: Path) -> str:
    """Why the bake could not write under ``out`` ("" when it can): checked before any work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc}); pick a writable folder with --out DIR"
    return ""


if __name__ == "__main__":
    sys.exit(main())
