"""One-off: what each converted family costs at run time, fused or not (never run by CI).

Step 1 (torch venv, see tools/make_arch_fixtures.py) writes random-weight models of MiniLM's size
(6 layers, hidden 384, 12 heads, intermediate 1536) for every family, with the tiny fixtures'
tokenizers and sentence-transformers files:

    .venv-tools/bin/python tools/arch_speed.py make /tmp/arch-speed

Step 2 (the project venv) bakes each as a custom model (fp32 and default int8) and times
``TextEmbedding.embed`` on the evaluation texts, 2 threads, best of 3:

    .venv/bin/python tools/arch_speed.py run /tmp/arch-speed
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SIZE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12}
FAMILIES = {  # name -> (fixture whose tokenizer and ST files it borrows, config overrides)
    "bert": ("nomic-bert-tiny", {"intermediate_size": 1536, "max_position_embeddings": 512}),
    "xlm-roberta": ("xlm-roberta-tiny", {"intermediate_size": 1536, "max_position_embeddings": 514}),
    "mpnet": ("mpnet-tiny", {"intermediate_size": 1536, "max_position_embeddings": 514}),
    "modernbert": ("modernbert-tiny", {"intermediate_size": 1024, "local_attention": 128,
                                       "global_attn_every_n_layers": 3,
                                       "max_position_embeddings": 8192}),
    "nomic_bert": ("nomic-bert-tiny", {"intermediate_size": 1024, "max_position_embeddings": 8192}),
    "qwen3": ("qwen3-tiny", {"intermediate_size": 1024, "num_key_value_heads": 4, "head_dim": 32,
                             "max_position_embeddings": 8192}),
}  # fmt: skip
ST_FILES = ("tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json")


def make(out: Path) -> None:
    import torch
    import transformers

    classes = {
        "bert": (transformers.BertConfig, transformers.BertModel),
        "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaModel),
        "mpnet": (transformers.MPNetConfig, transformers.MPNetModel),
        "modernbert": (transformers.ModernBertConfig, transformers.ModernBertModel),
        "nomic_bert": (transformers.NomicBertConfig, transformers.NomicBertModel),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3Model),
    }
    torch.manual_seed(0)
    for family, (fixture, overrides) in FAMILIES.items():
        tiny = json.loads((FIXTURES / fixture / "config.json").read_text())
        config_cls, model_cls = classes[family]
        keep = {k: tiny[k] for k in ("vocab_size", "pad_token_id") if k in tiny}
        model = model_cls(config_cls(**keep, **SIZE, **overrides)).eval()
        folder = out / family
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(str(folder), safe_serialization=True)
        for name in ST_FILES:
            shutil.copyfile(FIXTURES / fixture / name, folder / name)
        shutil.copytree(FIXTURES / fixture / "1_Pooling", folder / "1_Pooling")
        # the speed of inputs up to 128 tokens, not the fixtures' 24
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
        print(family, sum(p.numel() for p in model.parameters()), "parameters")


def run(out: Path) -> None:
    import numpy as np

    from kettle import TextEmbedding
    from models_bake.verify import eval_texts

    texts = eval_texts()
    rows = []
    for family in FAMILIES:
        for scheme in ("none", "int8"):
            name = f"speed/{family}-{scheme}"
            cmd = [sys.executable, "-m", "models_bake", name, "--source", str(out / family),
                   "--out", str(out / "baked"), "--quantize", scheme, "--min-cosine", "0", "-q"]  # fmt: skip
            subprocess.run(cmd, check=True, cwd=REPO)
            model = TextEmbedding(name, models_dir=out / "baked", threads=2)
            fusion = (model.manifest.quantization or {}).get("fusion", {})
            list(model.embed(texts[:32]))  # warm up
            best = 0.0
            for _ in range(3):
                start = time.perf_counter()
                vectors = np.stack(list(model.embed(texts)))
                best = max(best, len(texts) / (time.perf_counter() - start))
            assert vectors.shape[0] == len(texts)
            rows.append((family, scheme, round(best, 1), fusion))
            print(f"{family:12} {scheme:5} {best:8.1f} texts/s  fused: {fusion}", flush=True)
    (out / "speed.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    step, folder = sys.argv[1], Path(sys.argv[2])
    make(folder) if step == "make" else run(folder)
