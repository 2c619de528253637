"""One-off: tiny random-weight models of each converted architecture, with torch-made references.

Never run by CI. Run with a torch venv that stays out of the repo's installs, e.g.

    python3.11 -m venv .venv-tools      # git-ignored
    .venv-tools/bin/pip install torch==2.13.0 transformers sentence-transformers
    .venv-tools/bin/python tools/make_arch_fixtures.py

For each architecture it writes ``tests/fixtures/<arch>-tiny/``: a model folder as the Hugging Face
hub would hold it (config.json, model.safetensors, tokenizer.json, tokenizer_config.json and the
sentence-transformers files modules.json, 1_Pooling/config.json, sentence_bert_config.json,
config_sentence_transformers.json with named prompts), so that ``python -m models_bake NAME
--source DIR`` bakes it as a custom model; and ``reference.json`` beside it: the token ids, the
transformers ``last_hidden_state`` of a padded batch (real tokens only), the sentence-transformers
vectors (with and without a named prompt) and, for the reranker, the pair logits.

The weights are random but scaled so every layer matters (HF's 0.02 init makes a near-constant
model); the tokenizer is a small WordPiece trained on models_bake/eval_texts.json, with the special
tokens laid out as each family's real tokenizer has them (XLM-R/MPNet: <s> <pad> </s> <unk>).
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures"
VOCAB = 320
MAX_SEQ = 24  # sentence-transformers' max_seq_length: the long texts are truncated there

TEXTS = [
    "hello",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The quick brown fox jumps over the lazy dog, then the dog sleeps in the sun all day long "
    "while the fox runs away into the forest and the river flows to the sea.",  # past MAX_SEQ
    "Tea",
    "a kettle boils water for tea and coffee",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "",
]
PAIRS = [
    ("what boils water?", "a kettle boils water for tea and coffee"),
    ("what boils water?", "Paris is the capital and most populous city of France."),
    ("capital of France", "Paris is the capital and most populous city of France."),
    ("capital of France", TEXTS[3]),
]
PROMPTS = {"query": "query: ", "passage": "passage: "}


def corpus() -> list[str]:
    return json.loads((REPO / "models_bake" / "eval_texts.json").read_text())["texts"]


def make_tokenizer(style: str) -> Tokenizer:
    """A WordPiece tokenizer; ``style`` "roberta" (<s> ... </s>) or "bert" ([CLS] ... [SEP])."""
    if style == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        cls, sep, unk = "<s>", "</s>", "<unk>"
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        cls, sep, unk = "[CLS]", "[SEP]", "[UNK]"
    tok = Tokenizer(models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=specials, min_frequency=1)
    tok.train_from_iterator(corpus(), trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    c, s = tok.token_to_id(cls), tok.token_to_id(sep)
    pair = (
        f"{cls} $A {sep} {sep} $B:1 {sep}:1"
        if style == "roberta"
        else f"{cls} $A {sep} $B:1 {sep}:1"
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair, special_tokens=[(cls, c), (sep, s)]
    )
    return tok


def tokenizer_config(style: str, max_len: int) -> dict:
    if style == "roberta":
        names = {
            "bos_token": "<s>",
            "cls_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "mask_token": "<mask>",
        }
    else:
        names = {
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
        }
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_len, **names}


def scale_weights(model: torch.nn.Module, seed: int) -> None:
    """Random weights of a size that makes every layer count (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name.lower() or "LayerNorm" in name) and "weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed" in name or "relative_attention_bias" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))


def write_st_files(folder: Path, pooling: str, normalize: bool, max_seq: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_lasttoken": pooling == "last",
                "include_prompt": True,
            },
            indent=2,
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq, "do_lower_case": False})
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
            indent=2,
        )
    )


def hidden_reference(model, tok: Tokenizer, pad_id: int, texts: list[str], max_len: int) -> dict:
    tok = Tokenizer.from_str(tok.to_str())
    tok.no_padding()
    tok.enable_truncation(max_len)
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = torch.full((len(texts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
        alone = [model(input_ids=torch.tensor([e.ids])).last_hidden_state[0].numpy() for e in encs]
    for e, h, a in zip(encs, hidden, alone, strict=True):  # padding must not change real tokens
        assert np.abs(h[: len(e.ids)] - a).max() < 1e-5
    return {
        "texts": texts,
        "max_length": max_len,
        "input_ids": [e.ids for e in encs],
        "hidden": [h[: len(e.ids)].round(6).tolist() for e, h in zip(encs, hidden, strict=True)],
    }


def st_reference(folder: Path, texts: list[str]) -> dict:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu")
    plain = st.encode(texts, convert_to_numpy=True, batch_size=4)
    query = st.encode(texts, prompt_name="query", convert_to_numpy=True, batch_size=4)
    return {
        "st_max_seq_length": st.max_seq_length,
        "embeddings": plain.round(7).tolist(),
        "query_embeddings": query.round(7).tolist(),
    }


def save(folder: Path, model, tok: Tokenizer, style: str, max_len: int) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(style, max_len), indent=2)
    )
    (folder / "generation_config.json").unlink(missing_ok=True)


def versions() -> dict:
    import sentence_transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------------- architectures


def xlm_roberta(tok: Tokenizer):
    cfg = transformers.XLMRobertaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_SEQ + 2 + 16,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    return transformers.XLMRobertaModel(cfg, add_pooling_layer=False)


def xlm_roberta_rerank(tok: Tokenizer):
    cfg = transformers.XLMRobertaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64 + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
        layer_norm_eps=1e-5,
    )
    return transformers.XLMRobertaForSequenceClassification(cfg)


def mpnet(tok: Tokenizer):
    cfg = transformers.MPNetConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_SEQ + 2 + 16,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        relative_attention_num_buckets=32,
        layer_norm_eps=1e-5,
    )
    return transformers.MPNetModel(cfg, add_pooling_layer=False)


def modernbert(tok: Tokenizer):
    cfg = transformers.ModernBertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        local_attention=8,
        global_attn_every_n_layers=2,
        pad_token_id=tok.token_to_id("[PAD]"),
        bos_token_id=tok.token_to_id("[CLS]"),
        cls_token_id=tok.token_to_id("[CLS]"),
        eos_token_id=tok.token_to_id("[SEP]"),
        sep_token_id=tok.token_to_id("[SEP]"),
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
        norm_bias=False,
        attn_implementation="eager",
    )
    return transformers.ModernBertModel(cfg)


def nomic_bert(tok: Tokenizer):
    cfg = transformers.NomicBertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=tok.token_to_id("[PAD]"),
        hidden_act="silu",
        layer_norm_eps=1e-12,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )
    return transformers.NomicBertModel(cfg)


def qwen3(tok: Tokenizer):
    cfg = transformers.Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=48,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    return transformers.Qwen3Model(cfg)


# name, builder, tokenizer style, sentence-transformers pooling, normalize, seed
ARCHS = [
    ("xlm-roberta-tiny", xlm_roberta, "roberta", "mean", True, 1),
    ("mpnet-tiny", mpnet, "roberta", "mean", True, 2),
    ("modernbert-tiny", modernbert, "bert", "cls", True, 3),
    ("nomic-bert-tiny", nomic_bert, "bert", "mean", False, 4),
    ("qwen3-tiny", qwen3, "bert", "last", True, 6),  # a decoder: causal, last-token pooling
]


def mpnet_buckets() -> list[int]:
    """torch's MPNet relative-position buckets for offsets -600..600 (the converter's table)."""
    rel = torch.arange(-600, 601)
    return transformers.models.mpnet.modeling_mpnet.MPNetEncoder.relative_position_bucket(
        rel
    ).tolist()


def main(argv: list[str]) -> int:
    """Build the fixtures named in ``argv`` (all of them when none is named)."""
    torch.manual_seed(0)
    tokenizers_ = {"roberta": make_tokenizer("roberta"), "bert": make_tokenizer("bert")}
    for name, build, style, pooling, normalize, seed in ARCHS:
        if argv and name not in argv:
            continue
        tok = tokenizers_[style]
        model = build(tok).eval()
        model.config._attn_implementation = "eager"
        scale_weights(model, seed)
        folder = OUT / name
        save(folder, model, tok, style, 512)
        write_st_files(folder, pooling, normalize, MAX_SEQ)
        pad_id = model.config.pad_token_id
        # Past the local window (8) and past max_seq_length: the long text is cut at MAX_SEQ.
        ref = hidden_reference(model, tok, pad_id, TEXTS, MAX_SEQ)
        ref |= st_reference(folder, TEXTS)
        assert ref["st_max_seq_length"] == MAX_SEQ
        ref |= {
            "architecture": model.config.architectures or [type(model).__name__],
            "pooling": pooling,
            "normalize": normalize,
            "prompts": PROMPTS,
            "versions": versions(),
        }
        if name.startswith("mpnet"):
            ref["relative_position_buckets"] = mpnet_buckets()
        if name.startswith("modernbert"):  # a longer batch: several local windows
            long = hidden_reference(model, tok, pad_id, [TEXTS[3] * 2, TEXTS[2]], 60)
            ref["long"] = long
        (OUT / f"{name}.reference.json").write_text(json.dumps(ref) + "\n")
        print(name, sum(p.numel() for p in model.parameters()), "parameters")

    if argv and "xlm-roberta-reranker-tiny" not in argv:
        return 0
    tok = tokenizers_["roberta"]
    model = xlm_roberta_rerank(tok).eval()
    model.config._attn_implementation = "eager"
    scale_weights(model, 5)
    folder = OUT / "xlm-roberta-reranker-tiny"
    save(folder, model, tok, "roberta", 64)
    enc_tok = Tokenizer.from_str(tok.to_str())
    enc_tok.no_padding()
    enc_tok.enable_truncation(64)
    encs = enc_tok.encode_batch(PAIRS)
    width = max(len(e.ids) for e in encs)
    ids = torch.full((len(encs), width), 1, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, 0].numpy()
    ref = {
        "pairs": PAIRS,
        "max_length": 64,
        "input_ids": [e.ids for e in encs],
        "logits": logits.round(6).tolist(),
        "versions": versions(),
    }
    (OUT / "xlm-roberta-reranker-tiny.reference.json").write_text(json.dumps(ref) + "\n")
    print("xlm-roberta-reranker-tiny", logits)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
