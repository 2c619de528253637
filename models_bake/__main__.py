"""python -m models_bake MODEL [--out DIR] [--quantize int8|auto|...|none] [--min-cosine X]
[--gate K=V] [--source DIR_OR_HF_REPO] [--eval DATA]

A MODEL that is not in the registry is a custom model: ``--source DIR_OR_HF_REPO`` is required,
and what --kind, --pooling, --normalize, --max-length and the prefixes leave out is read from the
model's own files (models_bake.describe).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

from kettle.evaluation.data import DataError
from kettle.evaluation.data import load as load_beir
from kettle.registry import MODELS, Source, UnknownModelError, get_model
from models_bake.bake import BakeError, bake
from models_bake.convert import UnsupportedArchitectureError
from models_bake.describe import DescribeError, describe
from models_bake.sources import SourceError, fetch
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
        "not batch-invariant; int8-blockwise: weight-only MatMulNBits; auto: the fastest that "
        "passes the gate of int8, int8-mixed (the MatMuls that hurt most kept fp32) and "
        "int8-blockwise, else fp32; none: fp32",
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
        "--source",
        metavar="DIR_OR_HF_REPO",
        help="bake from this local directory or Hugging Face repo instead of the registry's "
        "sources (required for a model that is not in the registry)",
    )
    custom = parser.add_argument_group(
        "custom models", "override what the model's files say (config.json, modules.json, ...)"
    )
    custom.add_argument("--kind", choices=["dense", "sparse", "rerank"])
    custom.add_argument("--pooling", choices=["mean", "cls", "last"])
    custom.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None)
    custom.add_argument("--max-length", type=int)
    custom.add_argument("--query-prefix")
    custom.add_argument("--passage-prefix")
    parser.add_argument(
        "--eval",
        type=Path,
        metavar="DATA",
        help="gate on this BEIR folder of yours (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
        "instead of kettle's texts: int8 against fp32 nDCG@10 and the cosine gates on its texts",
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download cache")
    parser.add_argument("--force", action="store_true", help="bake even when up to date")
    parser.add_argument("--list", action="store_true", help="list the models kettle knows")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    log = logging.getLogger("models_bake")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs per tensor
    if args.list or not args.model:
        for m in MODELS:
            print(f"{m.name:45} {m.kind:16} dim={m.dim:<6} {m.sources[0].type}:{m.sources[0].ref}")
        return 0 if args.list else 2
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
        if args.eval is not None:
            load_beir(args.eval)  # bad data: one line now, not after the conversion
        source = _source(args.source) if args.source else None
        description = _description(args, source)
        result = bake(
            args.model,
            out=args.out,
            quantize=args.quantize,
            min_cosine=args.min_cosine,
            cache=args.cache,
            source=source,
            force=args.force,
            description=description,
            gates=gates,
            eval_data=args.eval,
        )
    except (
        BakeError,
        DataError,
        DescribeError,
        FidelityError,
        SourceError,
        UnknownModelError,
        UnsupportedArchitectureError,
    ) as exc:
        print(f"models_bake: error: {exc}", file=sys.stderr)
        return 1
    m = result.manifest
    state = "up to date" if result.skipped else f"baked in {result.seconds:.1f}s"
    print(f"{m.name}: {state} -> {result.path}")
    if m.fidelity:
        print("fidelity: " + json.dumps(m.fidelity, sort_keys=True))
    return 0


class _Elapsed(logging.Formatter):
    """``models_bake: [  12.3s] step: what it does``: the seconds since the command started, so
    that each progress line says how long the bake has taken so far."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        elapsed = time.monotonic() - self.started
        return f"models_bake: [{elapsed:6.1f}s] {record.getMessage()}"


_HF_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_OVERRIDES = {
    "kind": "kind",
    "pooling": "pooling",
    "normalize": "normalize",
    "max_length": "max_length",
    "query_prefix": "query_prefix",
    "passage_prefix": "passage_prefix",
}


def _source(ref: str) -> Source:
    """A local folder when the path exists, else a Hugging Face repo id."""
    path = Path(ref).expanduser()
    if path.exists():
        return Source("local", str(path.resolve()))
    if _HF_REPO.fullmatch(ref):
        return Source("hf", ref)
    raise SourceError(f"--source {ref!r}: no such directory, and not a Hugging Face repo id")


def _description(args: argparse.Namespace, source: Source | None):
    """None for a registry model baked as described; else the description to bake."""
    overrides = {
        field: getattr(args, arg)
        for arg, field in _OVERRIDES.items()
        if getattr(args, arg) is not None
    }
    try:
        known = get_model(args.model)
    except UnknownModelError:
        if source is None:
            raise
        fetched = fetch(source, args.cache)
        return describe(args.model, fetched.path, source, **overrides)
    return dataclasses.replace(known, **overrides) if overrides else None


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
