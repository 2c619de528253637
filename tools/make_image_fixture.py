"""Make tests/kettle/image/fixtures/fastembed: a tiny ONNX image model, configs, images and the vectors
FastEmbed's ImageEmbedding gives for them.

FastEmbed cannot live in kettle's venv (fastembed 0.9.1 pins huggingface-hub<2, kettle's bake pins
2.4.0), so it runs in a venv of its own:

    python3 -m venv /tmp/fe2 && /tmp/fe2/bin/pip install fastembed==0.9.1
    .venv/bin/python tools/make_image_fixture.py --fastembed-python /tmp/fe2/bin/python

Step 1 (this venv, needs onnx + Pillow) writes the model directories and PNG images; step 2
re-runs this file under the FastEmbed venv (``--worker DIR``) and records, per config and image,
FastEmbed's normalised vector and a fingerprint of its preprocessed pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "kettle" / "image" / "fixtures" / "fastembed"
PROXY_MODEL = "Qdrant/resnet50-onnx"  # any FastEmbed image model whose file is model.onnx


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_inputs(out: Path) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "kettle" / "image"))
    from _image_model import CONFIGS, make_test_images, write_model_dir

    (out / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for name, image in make_test_images().items():
        image.save(out / "images" / f"{name}.png")
        names.append(name)
    configs = {}
    for name, config in CONFIGS.items():
        directory = write_model_dir(out / name, config)
        configs[name] = {
            "model_sha256": sha256(directory / "model.onnx"),
            "config_sha256": sha256(directory / "preprocessor_config.json"),
        }
    return {"images": names, "configs": configs}


def worker(out: Path) -> None:
    """Runs under the FastEmbed venv: print {config: {vectors, pixel_fingerprints}} as JSON."""
    import numpy as np
    from fastembed import ImageEmbedding
    from fastembed.common.preprocessor_utils import load_preprocessor
    from PIL import Image

    sys.path.insert(0, str(REPO / "tests" / "kettle" / "image"))
    from _image_model import pixel_fingerprint  # numpy only

    paths = sorted((out / "images").glob("*.png"))
    result = {}
    for directory in sorted(p.parent for p in out.glob("*/model.onnx")):
        model = ImageEmbedding(PROXY_MODEL, specific_model_path=str(directory), threads=1)
        vectors = list(model.embed([str(p) for p in paths], batch_size=4))
        processor = load_preprocessor(directory)
        fingerprints = {}
        for path in paths:
            with Image.open(path) as image:
                (pixels,) = processor([image])
            fingerprints[path.stem] = pixel_fingerprint(np.asarray(pixels)).tolist()
        result[directory.name] = {
            "vectors": {
                p.stem: v.astype(float).tolist() for p, v in zip(paths, vectors, strict=True)
            },
            "pixel_fingerprints": fingerprints,
        }
    import fastembed
    import onnxruntime
    import PIL

    versions = {
        "fastembed": fastembed.__version__,
        "onnxruntime": onnxruntime.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }
    print(json.dumps({"versions": versions, "configs": result}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastembed-python", default="/tmp/fe2/bin/python")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    record = write_inputs(args.out)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.run(
        [args.fastembed_python, __file__, "--worker", str(args.out)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    fastembed = json.loads(run.stdout.strip().splitlines()[-1])
    record["versions"] = fastembed["versions"]
    for name, figures in fastembed["configs"].items():
        record["configs"][name].update(figures)
    record["made_by"] = "tools/make_image_fixture.py"
    (args.out / "fastembed.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out / 'fastembed.json'} ({len(record['configs'])} configs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
