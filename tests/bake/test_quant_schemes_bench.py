"""bench/quant_schemes.py's reranker rows: what it times and how its table names the unit."""

from __future__ import annotations

from bench import quant_schemes


def test_rerank_workload_is_pairs_of_a_short_query_and_a_bench_passage():
    pairs = quant_schemes.workload("rerank", 64)
    assert len(pairs) == 64
    queries = [q for q, _ in pairs]
    assert len(set(queries)) == 4  # 16 passages per query
    assert all(len(q.split()) <= 10 for q in queries)
    assert quant_schemes.workload("dense", 8) == [d for _, d in pairs[:8]]


def test_table_names_pairs_for_a_reranker_and_texts_otherwise():
    row = {"texts_per_s": 10.0, "vs_fp32": 1.0, "MB": 1.0}
    result = {
        "model": "m",
        "cpu": "c",
        "threads": 2,
        "rounds": 1,
        "bench_texts": 4,
        "rows": {"fp32 (fused)": row},
    }
    assert "pairs/s" in quant_schemes.markdown(result | {"unit": "pairs"})
    assert "4 pairs" in quant_schemes.markdown(result | {"unit": "pairs"})
    dense = quant_schemes.markdown(result | {"unit": "passages"})
    assert "texts/s" in dense and "pairs/s" not in dense
