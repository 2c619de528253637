"""sentence-transformers fp32 reference vectors of the real MiniLM and MPNet weights.

Made once by tools/make_st_reference.py (torch as an oracle, never in CI) on texts the bake's gate
never sees; stored as tests/fixtures/st_reference_<name>.json with the vectors as a base64 .npy.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NAMES = {
    "sentence-transformers/all-MiniLM-L6-v2": "st_reference_minilm.json",
    "sentence-transformers/all-mpnet-base-v2": "st_reference_mpnet.json",
}


def load(model: str) -> tuple[list[str], np.ndarray, dict]:
    """(texts, float32 [n, dim] L2-normalised vectors, the rest of the record) for ``model``."""
    record = json.loads((FIXTURES / NAMES[model]).read_text(encoding="utf-8"))
    raw = base64.b64decode(record.pop("embeddings_npy_b64"))
    vectors = np.load(io.BytesIO(raw), allow_pickle=False)
    return record.pop("texts"), vectors, record
