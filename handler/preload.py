"""Init's first step, taken on import (handler.app imports this module before its routes): the
configured dense model starts loading in a background thread, and handler.app waits for it at the
end of its import, so init ends with the model loaded, as under SnapStart.

Why a thread: most of a load is ONNX Runtime building its session in C++ and hashlib checking the
files against the manifest, both with the GIL released, while the rest of init (Powertools'
resolvers, pydantic's models) is Python that holds it. Side by side, where a second CPU is free,
a cold start costs about the longer of the two instead of their sum (bench/cold_start.py).

The thread imports kettle, tokenizers and ONNX Runtime, none of which the handler's own imports
touch, and only after handler.app has imported numpy, Powertools' Logger and handler.models: two
threads importing the same modules at once could meet in a cycle of module locks. A load that
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
