"""A deterministic, offline, mixed-length English corpus for the benchmark.

Passages are spans of consecutive sentences cut from the docstrings of CPython's standard library
(the Python that runs the benchmark; its version is recorded with the results). A seeded RNG draws
each passage's length in words from a two-part lognormal: most passages are short (median 20
words, about 32 tokens; ~88% fall in 10-70 tokens), 5% are long (median 220 words, about 350
tokens: the tail past the model's 256). One passage per line; nothing is downloaded.

python bench/corpus.py [N] [--seed S]   (prints the token-length distribution)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import math
import random
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SEED = 20240611
SHORT_MEDIAN_WORDS, SHORT_SIGMA = 20.0, 0.5
LONG_MEDIAN_WORDS, LONG_SIGMA = 220.0, 0.35
LONG_SHARE = 0.05
MIN_WORDS = 3
SKIP_PARTS = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "turtledemo",
    "site-packages",
    "dist-packages",
    "ensurepip",
    "__phello__",
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WORDY = re.compile(r"[A-Za-z]")


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def _prose_sentences(doc: str) -> Iterator[str]:
    """English sentences of a docstring: doctest and code-looking lines dropped."""
    for paragraph in re.split(r"\n\s*\n", doc):
        lines = [ln.strip() for ln in paragraph.splitlines()]
        if any(ln.startswith((">>>", "...", "$ ")) for ln in lines):
            continue
        text = " ".join(ln for ln in lines if ln)
        if not text:
            continue
        letters = len(_WORDY.findall(text))
        if letters < 0.6 * len(text):  # mostly symbols: code, tables, signatures
            continue
        for sentence in _SENTENCE_END.split(text):
            if len(sentence.split()) >= MIN_WORDS:
                yield sentence


def sentences(root: Path | None = None) -> list[str]:
    """Every prose sentence of the standard library's docstrings, in a fixed order."""
    root = root or stdlib_dir()
    files = sorted(
        p for p in root.rglob("*.py") if not SKIP_PARTS.intersection(p.relative_to(root).parts[:-1])
    )
    out: list[str] = []
    for path in files:
        for doc in _docstrings(path):
            out.extend(_prose_sentences(doc))
    return out


def passages(n: int, seed: int = SEED, pool: list[str] | None = None) -> Iterator[str]:
    """``n`` passages: lognormal word counts, spans of consecutive sentences cut to that count."""
    pool = pool or sentences()
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < LONG_SHARE:
            target = rng.lognormvariate(math.log(LONG_MEDIAN_WORDS), LONG_SIGMA)
        else:
            target = rng.lognormvariate(math.log(SHORT_MEDIAN_WORDS), SHORT_SIGMA)
        target = max(MIN_WORDS, round(target))
        start = rng.randrange(len(pool))
        words: list[str] = []
        i = start
        while len(words) < target:
            words += pool[i % len(pool)].split()
            i += 1
        yield " ".join(words[:target])


def write(path: Path, n: int, seed: int = SEED) -> dict:
    """Write ``n`` passages to ``path`` (one a line) unless an identical file is there; describe it."""
    meta = {
        "n": n,
        "seed": seed,
        "source": f"CPython {sys.version.split()[0]} standard-library docstrings",
        "stdlib": str(stdlib_dir()),
    }
    stamp = path.with_suffix(".meta")
    key = repr(sorted(meta.items()))
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == key):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for text in passages(n, seed):
                fh.write(text + "\n")
        tmp.replace(path)
        stamp.write_text(key)
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return meta


def read(path: Path, n: int | None = None) -> Iterator[str]:
    """Stream passages from a corpus file (bounded memory)."""
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if n is not None and i >= n:
                return
            yield line.rstrip("\n")


def length_stats(counts: list[int], max_length: int = 256) -> dict:
    """p10/p50/p90/p99, mean and share past ``max_length`` of per-passage token counts."""
    ordered = sorted(counts)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    return {
        "n": len(ordered),
        "p10": pct(10),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
        "share_10_70": round(sum(10 <= c <= 70 for c in ordered) / len(ordered), 3),
        f"share_over_{max_length}": round(sum(c > max_length for c in ordered) / len(ordered), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tokenizer", default="models/sentence-transformers/all-MiniLM-L6-v2")
    args = parser.parse_args()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    texts = list(passages(args.n, args.seed))
    print(length_stats([len(e.ids) for e in tok.encode_batch(texts)]))


if __name__ == "__main__":
    main()
