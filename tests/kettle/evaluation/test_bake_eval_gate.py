"""python -m models_bake NAME --eval DATA: the int8 bake gated on the user's BEIR folder."""

from __future__ import annotations

import pytest

from kettle.dense import TextEmbedding
from kettle.registry import DEFAULT_RERANK_MODEL
from models_bake.__main__ import main as bake_main
from models_bake.bake import BakeError, bake
from models_bake.eval_gate import fingerprint
from models_bake.verify import FidelityError
from tests.conftest import MINILM, REPO
from tests.kettle.evaluation._beir import cosine_scores, reference_metrics, write_beir


@pytest.mark.bakes
def test_the_gate_measures_on_the_users_set(beir_folder, fp32_minilm, tmp_path):
    result = bake(
        MINILM, out=tmp_path, quantize="int8", cache=REPO / ".cache", eval_data=beir_folder
    )
    fidelity = result.manifest.fidelity
    # which set it was: where, its size, its files' sha256
    assert fidelity["eval_set"] == (
        f"beir:{beir_folder.resolve()} (24 queries, 25 passages, "
        f"sha256 {fingerprint(beir_folder)[:16]})"
    )
    assert fidelity["n_texts"] == 25 + 24  # cosines over its passages and queries
    # nDCG@10 of fp32 and of the int8 bake, as BEIR computes them on the folder's qrels
    fp32 = TextEmbedding(MINILM, specific_model_path=fp32_minilm)
    int8 = TextEmbedding(MINILM, specific_model_path=result.path)
    ref = reference_metrics(beir_folder, cosine_scores(fp32))["ndcg@10"]
    cand = reference_metrics(beir_folder, cosine_scores(int8))["ndcg@10"]
    assert fidelity["ndcg10_reference"] == round(ref, 4)
    assert fidelity["ndcg10_candidate"] == round(cand, 4)
    assert fidelity["ndcg_ratio"] == round(cand / ref, 4)
    assert fidelity["mean_cosine"] >= fidelity["min_cosine"] > 0.9
    # the same set again: up to date; the bake key holds the set's fingerprint
    again = bake(
        MINILM, out=tmp_path, quantize="int8", cache=REPO / ".cache", eval_data=beir_folder
    )
    assert again.skipped
    # a gate the user's set fails refuses the bake, naming the figure
    ratio = fidelity["ndcg_ratio"]
    with pytest.raises(FidelityError, match=rf"ndcg_ratio {ratio:.4f} < {ratio + 0.5}"):
        bake(
            MINILM,
            out=tmp_path / "refused",
            quantize="int8",
            cache=REPO / ".cache",
            eval_data=beir_folder,
            gates={"ndcg_ratio": ratio + 0.5},
        )
    assert not (tmp_path / "refused" / MINILM).exists()


def test_the_fingerprint_follows_the_files(tmp_path):
    one = write_beir(
        tmp_path / "a", [{"_id": "d", "text": "x"}], [{"_id": "q", "text": "y"}], [("q", "d", 1)]
    )
    two = write_beir(
        tmp_path / "b", [{"_id": "d", "text": "x"}], [{"_id": "q", "text": "y"}], [("q", "d", 2)]
    )
    assert fingerprint(one) != fingerprint(two)


def test_bad_data_fails_before_the_bake(tmp_path, capsys):
    folder = write_beir(
        tmp_path / "data", [{"_id": "d", "text": "x"}, "{oops"], [], [("q", "d", 1)]
    )
    assert bake_main([MINILM, "--eval", str(folder), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "corpus.jsonl:2: not a JSON line" in err and err.count("\n") == 1
    with pytest.raises(BakeError, match="--eval gates dense and sparse models"):
        bake(DEFAULT_RERANK_MODEL, out=tmp_path / "m", eval_data=folder)
