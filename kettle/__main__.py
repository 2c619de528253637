"""python -m kettle [demo|embed|models|count|eval]: try a baked model from the shell.

``python -m kettle eval DATA --model M ...`` compares models on a BEIR folder (kettle.evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from kettle.dense import TextEmbedding
from kettle.manifest import ManifestError
from kettle.registry import DEFAULT_MODEL
from kettle.store import ModelNotBakedError, find_model, list_baked

DEMO_SENTENCES = [
    "How do I make a cup of tea?",
    "Boil water, pour it over the tea leaves and let it steep for three minutes.",
    "The kettle whistles when the water boils.",
    "Lambda functions bill by the millisecond.",
    "A serverless function scales with the number of requests.",
]


def demo(model: TextEmbedding) -> None:
    started = time.perf_counter()
    vectors = np.stack(list(model.embed(DEMO_SENTENCES)))
    seconds = time.perf_counter() - started
    m = model.manifest
    quant = "int8" if m.quantization and m.quantization.get("weight_type") != "float32" else "fp32"
    print(f"model: {m.name} ({quant}, dim {m.dim}, pooling {m.pooling}, max_length {m.max_length})")
    print(f"vectors: shape {vectors.shape}, dtype {vectors.dtype}, first call {seconds:.3f}s")
    if m.fidelity:
        f = m.fidelity
        print(
            f"int8 fidelity vs fp32: mean cosine {f['mean_cosine']:.4f}, "
            f"min {f['min_cosine']:.4f}, top-10 agreement {f['top10_agreement']:.3f}"
        )
    print("\ncosine similarity:")
    sims = vectors @ vectors.T
    labels = [f"[{i}]" for i in range(len(DEMO_SENTENCES))]
    print("      " + " ".join(f"{label:>6}" for label in labels))
    for label, row in zip(labels, sims, strict=True):
        print(f"{label:>5} " + " ".join(f"{x:6.3f}" for x in row))
    print()
    for label, text in zip(labels, DEMO_SENTENCES, strict=True):
        print(f"{label} {text}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:  # its own options: DATA, repeatable --model, --out, ...
        from kettle.evaluation.cli import main as eval_main

        return eval_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m kettle", description=__doc__)
    parser.add_argument(
        "command", nargs="?", default="demo", choices=["demo", "embed", "models", "count", "eval"]
    )
    parser.add_argument("texts", nargs="*", help="texts for embed/count (default: stdin lines)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a baked dense model")
    parser.add_argument("--models-dir", default=None)
    # intermixed: `embed --model M "tea"` and `embed "tea" --model M` both work
    args = parser.parse_intermixed_args(argv)
    if args.command == "models":
        print("\n".join(list_baked(args.models_dir)) or "no baked models")
        return 0
    try:
        return _run(args)
    except (LookupError, ValueError, ManifestError) as exc:  # unbaked, wrong kind, bad text
        print(f"python -m kettle: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    try:
        kind = find_model(args.model, args.models_dir, verify=False).manifest.kind
    except ModelNotBakedError:
        kind = "dense"  # TextEmbedding below says what is baked and how to bake it
    if kind != "dense":
        raise ValueError(
            f"{args.command} needs a dense model; {args.model} is a {kind} model "
            "(use it from Python, e.g. SparseTextEmbedding for sparse)"
        )
    model = TextEmbedding(args.model, models_dir=args.models_dir)
    if args.command == "demo":
        demo(model)
        return 0
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    if args.command == "count":
        for text, n in zip(texts, model.token_counts(texts), strict=True):
            print(json.dumps({"tokens": n, "text": text}, ensure_ascii=False))
        return 0
    for vector in model.embed(texts):
        print(json.dumps([round(float(x), 6) for x in vector]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
