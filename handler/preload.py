"""Init's first step, taken on import (handler.app imports this module before its routes): the
configured dense model starts loading in a background thread, and handler.app waits for it at the
end of its import, so init ends with the model loaded, as under SnapStart.

Why a thread: ONNX Runtime builds its session in C++ and hashlib checks the files against the
manifest with the GIL released (measured: both overlap fully with Python running beside them),
while the rest of init (Powertools' resolvers, pydantic's models) is Python that holds it. Where a
second CPU is free, that part of the load costs no wall time; what holds the GIL (the imports, the
tokenizer's parse) still runs one at a time with the routes' imports. bench/cold_start.py measures
the whole.

The thread imports kettle, tokenizers and ONNX Runtime, none of which the handler's own imports
touch, and starts only once handler.app has imported numpy, Powertools' Logger and handler.models:
two threads importing the same modules at once could meet in a cycle of module locks. A load that
fails is left to the first request, which loads again and answers the error as it always did.
"""

from __future__ import annotations

import contextlib
import threading

from handler.models import MODELS
from handler.settings import Settings


def _load_dense() -> None:
    with contextlib.suppress(Exception):  # the first request loads again and answers the error
        MODELS.get("dense", Settings.from_env())


_thread = threading.Thread(target=_load_dense, name="kettle-preload", daemon=True)
_thread.start()


def wait() -> None:
    """Return once the background load has ended (the model loaded, or the load failed)."""
    _thread.join()


__all__ = ["wait"]
