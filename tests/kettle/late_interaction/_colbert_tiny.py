"""A tiny random ColBERT checkpoint (BERT from tests/bake/convert/_convert_ref + a projection) with a
WordPiece tokenizer, and an independent reference: ids built by hand, the float64 numpy BERT,
the projection and per-token normalisation in numpy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from _convert_ref import HIDDEN, VOCAB, make_config, make_state_dict, reference_forward
from _convert_ref import write_checkpoint as write_bert
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece
from tokenizers.processors import TemplateProcessing

DIM = 8
QUERY_LENGTH = 12
MAX_LENGTH = 40  # the random BERT's max_position_embeddings
SPECIAL = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = list(".,!?;:'\"()-")
WORDS = (
    "the cat sat on mat dog ran in park late interaction scores tokens with maxsim query "
    "document bread needs yeast ocean waves are blue red green fast slow model vector search "
    "engine index retrieval colbert bert projection normal unit length mask marker pad skip "
    "list punctuation apple banana river mountain city night day sun moon star tree"
).split()
VOCAB_LIST = SPECIAL + PUNCTUATION + WORDS
assert len(VOCAB_LIST) <= VOCAB and len(set(VOCAB_LIST)) == len(VOCAB_LIST)
IDS = {token: i for i, token in enumerate(VOCAB_LIST)}


def description(
    name: str, source: Path, text: str = "random ColBERT built by tests/kettle/late_interaction"
):
    """The registry description of the checkpoint ``write_checkpoint`` wrote into ``source``."""
    from kettle.registry import ModelDescription, Source

    return ModelDescription(
        name=name,
        kind="late_interaction",
        dim=DIM,
        pooling="token",
        normalize=True,
        max_length=MAX_LENGTH,
        sources=(Source("local", str(source)),),
        license="test",
        description=text,
        extra={"query_length": QUERY_LENGTH},
    )


def write_checkpoint(directory: Path, seed: int = 5, projection: bool = True) -> tuple:
    """config.json, model.safetensors (bert.* + linear.weight) and tokenizer.json."""
    cfg = make_config("HF_ColBERT")
    sd = make_state_dict("BertModel", seed=seed, prefix="bert.")
    if projection:
        rng = np.random.default_rng(seed + 1)
        sd["linear.weight"] = (rng.standard_normal((DIM, HIDDEN)) / np.sqrt(HIDDEN)).astype(
            np.float32
        )
    write_bert(directory, cfg, sd)
    tok = Tokenizer(WordPiece(IDS, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", IDS["[CLS]"]), ("[SEP]", IDS["[SEP]"])],
    )
    tok.save(str(directory / "tokenizer.json"))
    return cfg, sd


def word_ids(text: str) -> list[int]:
    """Ids by hand: lower-case words and single punctuation marks, looked up in the vocabulary."""
    return [IDS.get(t, IDS["[UNK]"]) for t in re.findall(r"\w+|[^\w\s]", text.lower())]


def reference(cfg, sd, ids: list[int], mask: list[int]) -> np.ndarray:
    """Projected, normalised vectors of every position of one sequence (float64)."""
    ids_a = np.array([ids])
    hidden = reference_forward(cfg, sd, ids_a, np.array([mask]), np.zeros_like(ids_a), "BertModel")
    projected = hidden[0] @ sd["linear.weight"].astype(np.float64).T
    return projected / np.linalg.norm(projected, axis=1, keepdims=True)


def reference_document(cfg, sd, text: str) -> np.ndarray:
    body = word_ids(text)[: MAX_LENGTH - 3]
    ids = [IDS["[CLS]"], IDS["[unused1]"], *body, IDS["[SEP]"]]
    vecs = reference(cfg, sd, ids, [1] * len(ids))
    punctuation = {IDS[p] for p in PUNCTUATION}
    return vecs[[i not in punctuation for i in ids]]


def reference_query(cfg, sd, text: str) -> np.ndarray:
    body = word_ids(text)[: MAX_LENGTH - 3]
    ids = [IDS["[CLS]"], IDS["[unused0]"], *body, IDS["[SEP]"]]
    pad = max(0, QUERY_LENGTH - len(ids))
    return reference(cfg, sd, ids + [IDS["[MASK]"]] * pad, [1] * len(ids) + [0] * pad)
