"""Init's model load, begun before anything else imports: handler.app imports this module first
(before numpy, Powertools and the routes), and waits for it (``MODELS.wait``) at the end of its
own import, so init ends with the configured dense model loaded, as under SnapStart.

Here kettle's class for the model is imported; a background thread (ModelCache.start) then finds
the bake, checks its files against the manifest, reads the tokenizer and builds the ONNX Runtime
session. Hashing and the session build run with the GIL released, beside the Python that imports
numpy, Powertools and the routes: where a second CPU is free that time is hidden
(bench/cold_start.py). The thread imports only ONNX Runtime, which nothing else imports during
init (two threads importing the same modules at once could meet in a cycle of module locks), and,
to log the load, handler.observability, which the main thread may still be importing (the thread
waits for it; the main thread never waits on the thread's imports). A
model that cannot load is left to the first request, which loads again and answers the error as
it always did; under SnapStart, handler.app's init raises it as before.
"""

from __future__ import annotations

import contextlib

from handler.models import MODELS
from handler.settings import Settings, SettingsError

with contextlib.suppress(SettingsError):  # the first request reads the settings again and says
    MODELS.start("dense", Settings.from_env())
