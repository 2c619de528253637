"""Per-dimension output ranges of a dense bake, measured once so int8/uint8 codes never depend on
what else a request holds (kettle.output.OutputCalibration; the manifest's ``calibration``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kettle.manifest import Manifest
from kettle.output import OutputCalibration
from models_bake.verify import eval_texts


def output_calibration(model_dir: Path, threads: int | None = None) -> dict:
    """The ranges of the bake in ``model_dir`` (as the runtime loads it, int8 included) over the
    fidelity gate's evaluation texts, as the manifest records them."""
    from kettle.dense import TextEmbedding

    name = Manifest.read(model_dir).name
    model = TextEmbedding(name, specific_model_path=model_dir, threads=threads, verify=False)
    raw = np.stack(list(model.embed(eval_texts(), normalize=False)))
    return OutputCalibration.measure(raw, source="models_bake eval_texts()").to_json()
