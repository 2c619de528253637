"""bench/st_onnx.py: which sentence-transformers int8 file it picks and how its table reads."""

from __future__ import annotations

from bench import st_onnx, st_onnx_worker


def test_sentence_transformers_int8_config_follows_the_cpu():
    pick = st_onnx_worker.quantization_config
    assert pick({"avx2", "avx512f", "avx512_vnni"}, "x86_64") == "avx512_vnni"
    assert pick({"avx2", "avx512f"}, "x86_64") == "avx512"
    assert pick({"avx2", "fma"}, "x86_64") == "avx2"
    assert pick(set(), "aarch64") == "arm64"


def _results(kettle_int8: float) -> dict:
    def row(label: str, tps: float) -> dict:
        return {
            "label": label,
            "scheme": "s",
            "max_length": 256,
            "texts_per_s": tps,
            "rounds_texts_per_s": [tps],
            "texts_per_cpu_s": tps / 2,
            "mean_cosine": 0.99,
            "min_cosine": 0.98,
            "peak_rss_mb": 100.0,
        }

    rows = {
        "st-onnx-fp32": row("ST fp32", 10.0),
        "st-onnx-int8": row("ST int8", 20.0),
        "kettle-fp32": row("kettle fp32", 18.0),
        "kettle-int8": row("kettle int8", kettle_int8),
    }
    ratios = {
        "kettle_int8_vs_st_onnx_int8": kettle_int8 / 20.0,
        "kettle_fp32_vs_st_onnx_fp32": 1.8,
        "kettle_int8_vs_kettle_fp32": kettle_int8 / 18.0,
        "st_onnx_int8_vs_st_onnx_fp32": 2.0,
    }
    model = {
        "n_timed": 8,
        "reference": {"n_texts": 4, "n_past_max_seq_length": 1},
        "st_export": {"int8_file": "onnx/model_qint8_avx2.onnx"},
        "contestants": rows,
        "ratios": ratios,
        "ratios_cpu": {k: v for k, v in ratios.items() if k.startswith("kettle_") and "st" in k},
    }
    return {
        "command": "make bench",
        "date": "d",
        "threads": 2,
        "rounds": 1,
        "corpus": {"source": "src", "seed": 1},
        "machine": {
            "cpu": "c",
            "cpus_visible": 2,
            "kettle_versions": {"onnxruntime": "1"},
            "st_onnx_versions": {"sentence-transformers": "5"},
        },
        "models": {"m": model},
    }


def test_table_marks_the_2x_target_against_sentence_transformers_int8():
    assert "2.50× sentence-transformers' ONNX int8 (target ≥ 2×: met)" in st_onnx.markdown(
        _results(50.0)
    )
    short = st_onnx.markdown(_results(30.0))
    assert "1.50× sentence-transformers' ONNX int8 (target ≥ 2×: **not met**)" in short
    assert "| kettle int8 | s | 256 | 30.0 |" in short
