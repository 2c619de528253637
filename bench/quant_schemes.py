"""Choose the int8 scheme: fidelity and speed of each quantize_dynamic setting on this CPU.

python bench/quant_schemes.py [MODEL]   (prints a table; run on the machine you deploy to)
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kettle.dense import TextEmbedding
from kettle.registry import get_model
from models_bake import bake as b
from models_bake import quantize as q
from models_bake import verify


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    name = sys.argv[1] if len(sys.argv) > 1 else "sentence-transformers/all-MiniLM-L6-v2"
    description = get_model(name)
    fetched = b._fetch_first(description, description.sources, Path(".cache").resolve())
    texts = verify.eval_texts()
    bench_texts = [t for t in texts if t][:96] * 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, _ = b._fp32_graph(description, fetched, work)
        fused, stats = b._fuse(description, fetched, fp32, work)
        io = b._onnx_io(fp32)
        ref = work / "ref"
        b._write_model_dir(ref / name, fp32, fetched, description, io, None, {})
        rows = []
        schemes = [("fp32 fused", None, fused)]
        for fuse in (True, False):
            for wt in ("QInt8", "QUInt8"):
                for pc in (False, True):
                    for rr in (False, True):
                        s = q.QuantScheme(
                            weight_type=wt,
                            per_channel=pc,
                            reduce_range=rr,
                            fused=fuse,
                            op_types=("MatMul", "Attention") if fuse else ("MatMul",),
                        )
                        schemes.append(
                            (f"{'fused' if fuse else 'plain'} {wt} pc={pc} rr={rr}", s, None)
                        )
        schemes.append(("plain blockwise int8 bs32 (MatMulNBits)", q.BLOCKWISE_SCHEME, None))
        for label, scheme, path in schemes:
            if scheme is not None:
                path = work / "q.onnx"
                q.quantize_int8(fused if scheme.fused else fp32, path, scheme)
            cand = work / "cand"
            b._write_model_dir(cand / name, path, fetched, description, io, None, {})
            fig = verify.dense_fidelity(name, ref, cand, texts)
            model = TextEmbedding(name, models_dir=cand, threads=2)
            list(model.embed(bench_texts[:16]))
            t0 = time.perf_counter()
            for _ in range(3):
                list(model.embed(bench_texts))
            rate = 3 * len(bench_texts) / (time.perf_counter() - t0)
            rows.append(
                (
                    label,
                    fig["mean_cosine"],
                    fig["min_cosine"],
                    fig["top10_agreement"],
                    rate,
                    path.stat().st_size / 1e6,
                )
            )
            shutil.rmtree(cand)
        print(f"fusion: {stats}")
        print(f"{'scheme':38} {'mean cos':>9} {'min cos':>8} {'top10':>6} {'texts/s':>8} {'MB':>6}")
        for r in rows:
            print(f"{r[0]:38} {r[1]:9.5f} {r[2]:8.4f} {r[3]:6.3f} {r[4]:8.1f} {r[5]:6.1f}")


if __name__ == "__main__":
    main()
