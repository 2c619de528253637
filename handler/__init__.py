"""kettle's AWS Lambda handler: the only code that knows what a Lambda event is."""

import os

# pydantic looks for plugins in every installed distribution's entry points on its first
# validator (the first invalid body's: handler.validation); the function's layer ships none. An operator who
# does use one sets PYDANTIC_DISABLE_PLUGINS to "" (or a list of the plugins to skip).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# numpy's OpenBLAS starts a worker thread per CPU when numpy is imported, and each spins for
# ~0.1 s of CPU before it sleeps: on a cold start that slows the imports beside it (measured:
# bench/cold_start.py) and, on Lambda, spends the function's share of CPU time. The handler's
# numpy work is a few small arrays per request (ONNX Runtime has threads of its own), so one BLAS
# thread; an operator's own OPENBLAS_NUM_THREADS is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
