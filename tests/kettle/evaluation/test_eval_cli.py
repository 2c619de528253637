"""python -m kettle eval end to end: int8 and fp32 bakes of MiniLM side by side, a sparse bake and
a reranked row, each row's metrics against pytrec_eval on a run the test builds itself from
kettle's public API (as BEIR builds one), and the files it writes."""

from __future__ import annotations

import json
import math

import pytest

from kettle.__main__ import main
from kettle.dense import TextEmbedding
from kettle.registry import DEFAULT_SPARSE_MODEL, get_model
from kettle.rerank import TextCrossEncoder
from kettle.sparse import SparseTextEmbedding
from tests.conftest import MINILM
from tests.kettle.evaluation._beir import cosine_scores, reference_metrics

FIELDS = [
    "model",
    "bake",
    "precision",
    "ndcg@10",
    "recall@10",
    "recall@100",
    "mrr@10",
    "texts_per_s",
    "query_ms_p50",
    "bake_mb",
    "dim",
]


def test_eval_compares_bakes_on_a_beir_folder(
    models_dir,
    beir_folder,
    fp32_minilm,
    fp32_splade,
    rerank_fp32_dir,
    cross_encoder_name,
    tmp_path,
    capsys,
):
    reranker = rerank_fp32_dir / get_model(cross_encoder_name).dir_name
    out = tmp_path / "out"
    argv = ["eval", str(beir_folder), "--model", MINILM, "--model", str(fp32_minilm)]
    argv += [
        "--model",
        str(fp32_splade),
        "--rerank",
        str(reranker),
        "--models-dir",
        str(models_dir),
    ]
    assert main([*argv, "--out", str(out), "--lambda-memory", "3538", "--threads", "2"]) == 0
    printed = capsys.readouterr()
    assert "25/25" in printed.err  # progress while embedding: passages done of total

    result = json.loads((out / "eval.json").read_text())
    rows = result["rows"]
    assert all(list(r) == FIELDS for r in rows)
    assert [r["precision"] for r in rows] == ["int8", "int8 + fp32", "fp32", "fp32 + fp32", "fp32"]
    assert [r["dim"] for r in rows] == [384, 384, 384, 384, 30522]
    assert rows[0]["bake"] == str(models_dir / MINILM)
    assert rows[2]["bake"] == str(fp32_minilm)
    assert rows[2]["bake_mb"] > 3 * rows[0]["bake_mb"]  # fp32 weights are 4 bytes, int8 one
    assert result["queries"] == 24 and result["passages"] == 25

    int8 = TextEmbedding(MINILM, models_dir=models_dir)
    fp32 = TextEmbedding(MINILM, specific_model_path=fp32_minilm)
    splade = SparseTextEmbedding(DEFAULT_SPARSE_MODEL, specific_model_path=fp32_splade)
    cross = TextCrossEncoder(cross_encoder_name, specific_model_path=reranker)

    def sparse_scores(queries, texts):
        docs = list(splade.passage_embed(texts))
        return [[q.dot(d) for d in docs] for q in splade.query_embed(queries)]

    def reranked(queries, texts):  # depth 100 > 25 passages: every passage is reranked
        return [cross.rerank_pairs([(q, t) for t in texts]) for q in queries]

    expected = [
        reference_metrics(beir_folder, cosine_scores(int8)),
        reference_metrics(beir_folder, reranked),
        reference_metrics(beir_folder, cosine_scores(fp32)),
        reference_metrics(beir_folder, reranked),
        reference_metrics(beir_folder, sparse_scores),
    ]
    for row, want in zip(rows, expected, strict=True):
        for key, value in want.items():
            assert row[key] == pytest.approx(value, abs=6e-6), (row["precision"], key)
    assert 0.5 < rows[0]["ndcg@10"] <= 1  # MiniLM finds these docstrings

    # Lambda: 3538 MB is 2 vCPUs, the threads measured: the rate as measured, 3538/1024 GB.
    for row, cost in zip(rows, result["lambda"]["usd_per_million_passages"], strict=True):
        seconds = 1e6 / row["texts_per_s"]
        assert cost["x86_64"] == pytest.approx(seconds * 3538 / 1024 * 0.0000166667, rel=1e-3)
        assert cost["arm64"] == pytest.approx(seconds * 3538 / 1024 * 0.0000133334, rel=1e-3)
    assert "1 vCPU per 1,769 MB" in printed.out and "per GB-s" in printed.out

    # The recommendation: the smallest bake within 1% nDCG@10 of the best.
    best = max(r["ndcg@10"] for r in rows)
    pick = min((r for r in rows if r["ndcg@10"] >= 0.99 * best), key=lambda r: r["bake_mb"])
    line = next(s for s in printed.out.splitlines() if s.startswith("recommended: "))
    assert f"({pick['precision']}, {pick['bake_mb']} MB, {pick['bake']})" in line
    assert result["recommendation"] == line

    md = (out / "eval.md").read_text()
    assert "| model | precision | nDCG@10 |" in md and line in md
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert math.isfinite(rows[0]["query_ms_p50"]) and rows[0]["query_ms_p50"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", MINILM, "--rerank", MINILM], "a dense model, not a rerank (cross-encoder)"),
        (["--model", "nobody/nothing"], "not in kettle's registry"),
        (["--model", MINILM, "--k", "0"], "--k must be at least 1"),
        (["--model", "MODELS_DIR"], "MODELS_DIR: a folder without manifest.json, so not a bake"),
        (["--model", "MODELS_DIR"], f"{MINILM}"),
        (["--model", "MODELS_DIR"], ": --models-dir MODELS_DIR --model NAME"),
    ],
)
def test_model_mistakes_are_one_line(models_dir, beir_folder, tmp_path, capsys, extra, message):
    argv = ["eval", str(beir_folder), "--models-dir", str(models_dir), "--out", str(tmp_path)]
    extra = [str(models_dir) if word == "MODELS_DIR" else word for word in extra]
    message = message.replace("MODELS_DIR", str(models_dir))
    assert main(argv + extra) in (1, 2)
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_progress_without_tqdm_prints_done_of_total(monkeypatch, capsys):
    from kettle.evaluation.run import progress

    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # import tqdm fails
    assert list(progress(iter(range(20)), 20, "m")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "m: 2/20 passages" and lines[-1] == "m: 20/20 passages" and len(lines) == 10
