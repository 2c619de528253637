"""Regenerate models_bake/eval_retrieval.json: a retrieval set from numpy's own docstrings.

python -m models_bake.eval_build   (writes the file; it is committed, so every bake sees the same set)

Real English technical text that ships with a package kettle installs anyway (numpy), never CPython's
stdlib docstrings (those are kept for an independent check). Each public numpy function with a
long enough extended summary gives one query (its one-line summary) and one document (the extended
summary, without the summary line): queries are distinct from documents, and each query has
exactly one relevant document. Also writes a few whole docstrings (past 256 tokens: parameters,
code, numbers) for the broad fidelity set.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from pathlib import Path

OUT = Path(__file__).with_name("eval_retrieval.json")
N_PAIRS = 160
N_LONG = 8
SEED = 10


def _parts(doc: str) -> tuple[str, str] | None:
    doc = inspect.cleandoc(doc)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc)]
    if len(paragraphs) < 2:
        return None
    summary = " ".join(paragraphs[0].split())
    body = []
    for p in paragraphs[1:]:
        if re.match(r"^[A-Z][a-z ]+\n-{3,}", p) or p.startswith((">>>", "..")):
            break
        body.append(" ".join(p.split()))
    text = " ".join(body)
    if not (4 <= len(summary.split()) <= 25) or len(text.split()) < 15:
        return None
    if "(" in summary or not summary.endswith(".") or text.startswith(":"):
        return None  # a signature line, or a scalar type's attribute table
    return summary, text


def build() -> dict:
    import numpy as np

    found = {}
    for module in (np, np.linalg, np.fft, np.random, np.ma, np.polynomial.polynomial):
        for name in sorted(dir(module)):
            obj = getattr(module, name, None)
            if name.startswith("_") or not callable(obj) or not getattr(obj, "__doc__", None):
                continue
            parts = _parts(obj.__doc__)
            if parts and parts[0] not in {s for s, _ in found.values()}:
                found.setdefault(f"{module.__name__}.{name}", parts)
    keys = sorted(found)
    random.Random(SEED).shuffle(keys)
    pairs = [{"id": k, "query": found[k][0], "document": found[k][1]} for k in keys[:N_PAIRS]]
    long_docs = sorted(
        (
            inspect.cleandoc(getattr(np, n).__doc__)
            for n in (
                "einsum",
                "histogram",
                "pad",
                "where",
                "linspace",
                "unique",
                "genfromtxt",
                "datetime_as_string",
            )
        ),
        key=len,
    )[:N_LONG]
    return {
        "about": "Queries (one-line summaries) and documents (extended summaries) from numpy's "
        "docstrings; regenerate with python -m models_bake.eval_build",
        "source": f"numpy=={np.__version__}",
        "pairs": pairs,
        "long_texts": long_docs,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    data = json.loads(OUT.read_text())
    print(f"{OUT}: {len(data['pairs'])} pairs, {len(data['long_texts'])} long texts")
