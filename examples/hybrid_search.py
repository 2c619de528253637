"""Hybrid search end to end, in memory and offline: dense + SPLADE + BM25, fused by RRF.

    make models                              # bakes all-MiniLM-L6-v2 and the tiny SPLADE
    .venv/bin/python examples/hybrid_search.py
    .venv/bin/python examples/hybrid_search.py --rerank cross-encoder/ms-marco-MiniLM-L-6-v2

``--rerank`` adds a cross-encoder stage (bake it first: python -m models_bake <name>; the MS MARCO
reranker comes from the Hugging Face hub). Models are looked up in --models-dir, else
$KETTLE_MODELS_DIR, else ./models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kettle import Bm25, HybridIndex, SparseTextEmbedding, TextCrossEncoder, TextEmbedding

CORPUS = [
    "An electric kettle boils water faster than a pan on a gas stove.",
    "Green tea tastes bitter when brewed with water that is still boiling.",
    "Descaling a kettle with vinegar removes limestone deposits.",
    "Pasta should be cooked in plenty of salted water.",
    "A pressure cooker raises the boiling point of water and cooks beans quickly.",
    "Paris is the capital and largest city of France.",
    "Lyon is a French city known for its food and its silk history.",
    "Berlin became the capital of reunified Germany in 1990.",
    "Canberra, not Sydney, is the capital of Australia.",
    "The Loire valley in France is famous for its castles and wine.",
    "The blue whale is the largest animal and the largest mammal ever known.",
    "Humpback whales sing long, complex songs during the breeding season.",
    "The cheetah is the fastest land animal over short distances.",
    "Elephants are the largest land animals alive today.",
    "Bats are the only mammals capable of sustained flight.",
    "Python lists grow dynamically and keep their items in order.",
    "A hash map gives average constant-time lookups by key.",
    "Binary search needs a sorted array and halves the range at every step.",
    "Garbage collectors free memory that programs no longer reference.",
    "SQL joins combine rows from two tables on a matching column.",
    "The Moon is about 384,000 kilometres from the Earth.",
    "Mars has two small moons called Phobos and Deimos.",
    "A light-year is the distance light travels in one year.",
    "Saturn's rings are made mostly of ice particles.",
    "Marathon runners carry gels to replace carbohydrates during the race.",
    "A football match lasts ninety minutes plus stoppage time.",
    "Tennis players change ends after every odd game.",
    "Chess openings such as the Sicilian Defence are studied for years.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    "Espresso is made by forcing hot water through finely ground coffee.",
]

QUERIES = [
    "How do I make water boil faster?",
    "capital city of France",
    "which animal is the largest mammal",
]


def build_index(models_dir: str | Path | None = None, rerank: str | None = None) -> HybridIndex:
    """The example's index over CORPUS: MiniLM (dense), tiny SPLADE and BM25 (sparse)."""
    index = HybridIndex(
        dense=TextEmbedding(models_dir=models_dir),
        sparse=[SparseTextEmbedding(models_dir=models_dir), Bm25()],
        reranker=TextCrossEncoder(rerank, models_dir=models_dir) if rerank else None,
    )
    index.add(CORPUS)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--rerank", metavar="MODEL", help="a baked cross-encoder to rerank with")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("queries", nargs="*", help=f"default: {len(QUERIES)} built-in queries")
    args = parser.parse_args(argv)
    index = build_index(args.models_dir, args.rerank)
    print(f"indexed {len(index)} documents with {', '.join(index.retrievers)}")
    for query in args.queries or QUERIES:
        print(f"\n? {query}")
        for n, hit in enumerate(index.search(query, top_k=args.top_k), start=1):
            ranks = " ".join(f"{name}#{rank}" for name, rank in hit.ranks.items())
            print(f"  {n}. [{hit.score:.4f}] {hit.document}  ({ranks})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
