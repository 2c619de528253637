"""Write examples/numpy-docs/: models_bake/eval_retrieval.json as a BEIR folder, the set the
README's "Choosing a model" section runs `python -m kettle eval` on.

Each pair's query is a numpy function's one-line summary and its passage the extended summary,
titled with the function's name; the long docstrings join the corpus as passages no query is
judged against. Run: python tools/make_eval_example.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "models_bake" / "eval_retrieval.json"
OUT = REPO / "examples" / "numpy-docs"


def main() -> None:
    data = json.loads(SOURCE.read_text())
    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    with open(OUT / "corpus.jsonl", "w") as corpus:
        for p in data["pairs"]:
            row = {"_id": p["id"], "title": p["id"], "text": p["document"]}
            corpus.write(json.dumps(row, ensure_ascii=False) + "\n")
        for i, text in enumerate(data["long_texts"]):
            corpus.write(json.dumps({"_id": f"long-{i}", "title": "", "text": text}) + "\n")
    with open(OUT / "queries.jsonl", "w") as queries:
        for p in data["pairs"]:
            queries.write(json.dumps({"_id": f"q-{p['id']}", "text": p["query"]}) + "\n")
    with open(OUT / "qrels" / "test.tsv", "w", newline="") as qrels:
        writer = csv.writer(qrels, delimiter="\t", lineterminator="\n")
        writer.writerow(["query-id", "corpus-id", "score"])
        for p in data["pairs"]:
            writer.writerow([f"q-{p['id']}", p["id"], 1])


if __name__ == "__main__":
    main()
