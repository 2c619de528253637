"""Data-parallel worker processes for ``embed(..., parallel=N)`` (FastEmbed's argument).

The parent keeps what decides the result: it checks and tokenizes each window, plans the same
length-sorted batches as a single process would, and pads them; each worker holds its own copy
of the model and runs one padded batch through its session and the kind's last step. So the
vectors equal the single-process ones (dynamic int8 scales activations per batch, and the
batches are the same batches), and they come back in input order.

Workers start with ``forkserver`` where the platform has it, else ``spawn`` (never a plain
fork of a process whose ONNX Runtime threads may be running); as with any multiprocessing
program, a script that calls ``embed(parallel=...)`` at import time needs an
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from kettle.session import available_cpus

_MODEL: Any = None  # the worker process's model


def workers_for(parallel: int | None, items: Any = None, batch_size: int = 1) -> int:
    """How many worker processes ``parallel`` asks for: 0 means every CPU this process may
    use, None or 1 none (run in this process), as does an input that fits in one batch."""
    if parallel is None:
        return 0
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 0:
        raise ValueError(
            f"parallel must be None, 0 (all cores) or a positive int, got {parallel!r}"
        )
    n = parallel or available_cpus()
    if n <= 1:
        return 0
    if hasattr(items, "__len__") and len(items) <= batch_size:
        return 0  # FastEmbed does the same: a small input is not worth the start-up
    return n


def step_spec(step: Callable) -> tuple[str, dict[str, Any]]:
    """(method name, keyword arguments) of a kind's last step, to replay in a worker."""
    if isinstance(step, partial):
        return step.func.__name__, dict(step.keywords)
    return step.__name__, {}


class WorkerPool:
    """Processes that each load ``model``'s bake once; closed (terminated) on exit."""

    def __init__(self, model: Any, workers: int) -> None:
        cls = type(model)
        options = dict(getattr(model, "_options", {}))
        spec = (
            cls.__module__,
            cls.__qualname__,
            {
                "model_name": model.model_name,
                "specific_model_path": str(model.baked.path),
                "threads": model.threads or 1,
                "providers": model.providers,
                "verify": False,  # the parent verified the files
                "lazy_load": False,
                **options,
            },
            list(getattr(model, "device_ids", None) or []),
        )
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        counter = context.Value("i", 0)
        self.workers = workers
        self._pool = context.Pool(workers, initializer=_init_worker, initargs=(spec, counter))

    def submit(self, function: Callable, *args: Any):
        return self._pool.apply_async(function, args)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()


def ordered(pool: WorkerPool, function: Callable, tasks: Iterable[tuple]) -> Iterator[Any]:
    """``function(*task)`` in the workers, results in task order, at most two tasks per worker
    in flight (a stream of a million items is never all queued)."""
    pending: deque = deque()
    for task in tasks:
        pending.append(pool.submit(function, *task))
        if len(pending) >= 2 * pool.workers:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _init_worker(spec: tuple, counter: Any) -> None:
    global _MODEL
    module, qualname, kwargs, device_ids = spec
    if device_ids and kwargs.get("providers"):
        with counter.get_lock():
            slot = counter.value
            counter.value += 1
        device = device_ids[slot % len(device_ids)]
        kwargs["providers"] = [
            (p[0], {**p[1], "device_id": device}) if isinstance(p, tuple) and "CUDA" in p[0] else p
            for p in kwargs["providers"]
        ]
    cls = getattr(importlib.import_module(module), qualname)
    _MODEL = cls(**kwargs)


def run_batch(feeds: dict, mask: Any, step: tuple[str, dict]) -> list[Any]:
    """A worker's task: one padded batch through the session and the kind's last step."""
    name, options = step
    return list(getattr(_MODEL, name)(_MODEL.run_session(feeds), mask, **options))


def embed_images(offset: int, items: list) -> Any:
    """A worker's task: one batch of images (errors name ``images[offset + i]``)."""
    return _MODEL.embed_batch(items, offset)


__all__ = ["WorkerPool", "embed_images", "ordered", "run_batch", "step_spec", "workers_for"]
