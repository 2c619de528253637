"""The tokenizer of the baked default model (made by `make models`)."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENIZER = (
    Path(__file__).resolve().parents[3]
    / "models/sentence-transformers/all-MiniLM-L6-v2/tokenizer.json"
)


@pytest.fixture(scope="session")
def tokenizer():
    from tokenizers import Tokenizer

    if not TOKENIZER.is_file():
        pytest.fail(f"{TOKENIZER} is missing: run `make models` first")
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_truncation()  # the saved file pads and truncates; count whole texts here
    tok.no_padding()
    return tok
