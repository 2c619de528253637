"""Data-parallel worker processes for ``embed(..., parallel=N)`` (FastEmbed's argument).

The parent keeps what decides the result: it checks and tokenizes each window, plans the same
length-sorted batches as a single process would, and pads them; each worker holds its own copy
of the model and runs one padded batch through its session and the kind's last step. So the
vectors equal the single-process ones (dynamic int8 scales activations per batch, and the
batches are the same batches), and they come back in input order.

Each worker speaks to the parent over its own socket pair (``multiprocessing.Pipe``) and
nothing else: no Pool, Queue, Lock or Value, whose POSIX semaphores and shared memory need
``/dev/shm``, which AWS Lambda does not have. A worker gets one task at a time, so neither side
ever blocks writing while the other writes. The parent waits on the pipes and the processes'
sentinels together, so a worker that cannot start or dies mid-run (killed, out of memory) is a
``WorkerError`` that says why, never a hang.

Workers start with ``forkserver`` where the platform has it, else ``spawn`` (never a plain
fork of a process whose ONNX Runtime threads may be running); as with any multiprocessing
program, a script that calls ``embed(parallel=...)`` at import time needs an
``if __name__ == "__main__":`` guard, and without it the error says so.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import Any

from kettle.session import available_cpus

# Loading a bake takes a second or two; this bound only catches a worker stuck while starting.
START_TIMEOUT_S = 300.0
_JOIN_S = 5.0  # how long an exiting worker may take before it is killed


class WorkerError(RuntimeError):
    """A ``parallel=`` worker process could not start, or died while it ran (no result lost
    silently: the call that needed it raises this)."""


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


@dataclass(eq=False)
class _Worker:
    slot: int
    process: Any  # multiprocessing's Process of the chosen context
    conn: Connection
    started: bool = False  # kettle's code runs in it (the main module was imported)
    task: int | None = None  # the task it runs now


class WorkerPool:
    """Processes that each load ``model``'s bake once, started and ready when this returns;
    closed on exit (asked to stop after a clean run, terminated after an error)."""

    def __init__(self, model: Any, workers: int, start_timeout: float = START_TIMEOUT_S) -> None:
        if getattr(mp.current_process(), "_inheriting", False):
            # This process is a worker importing the main module: the script has no guard.
            raise WorkerError(
                _start_failure("embed(..., parallel=...) ran in a worker importing the main module")
            )
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
        self.model_name = model.model_name
        self.workers = workers
        self._workers: list[_Worker] = []
        try:
            for slot in range(workers):
                parent_end, child_end = context.Pipe()  # a socket pair: no semaphore
                process = context.Process(
                    target=_worker_main,
                    args=(child_end, spec, slot),
                    name=f"kettle-worker-{slot}",
                    daemon=True,
                )
                try:
                    process.start()
                except Exception as exc:
                    what = f"parallel worker {slot} failed to start ({type(exc).__name__}: {exc})"
                    raise WorkerError(_start_failure(what)) from exc
                finally:
                    child_end.close()  # else the parent would never see the worker's end close
                self._workers.append(_Worker(slot, process, parent_end))
            self._await_ready(start_timeout)
        except BaseException:
            self.close(clean=False)
            raise

    # ------------------------------------------------------------------ start and stop
    def _await_ready(self, timeout: float) -> None:
        waiting = {w.conn: w for w in self._workers}
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                slots = ", ".join(str(w.slot) for w in waiting.values())
                raise WorkerError(
                    f"parallel worker(s) {slots} did not load {self.model_name} within "
                    f"{timeout:.0f} s"
                )
            for conn in _ready(list(waiting.values()), left):
                worker = waiting[conn]
                message = self._receive(worker, starting=True)
                if message[0] == "started":
                    worker.started = True
                elif message[0] == "ready":
                    del waiting[conn]
                else:  # ("failed", text)
                    raise WorkerError(
                        f"parallel worker {worker.slot} could not load {self.model_name}: "
                        f"{message[1]}"
                    )

    def close(self, clean: bool = True) -> None:
        """Stop every worker: after a clean run each finishes and exits; else each is killed."""
        for worker in self._workers:
            if clean and worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            else:
                worker.process.terminate()
        for worker in self._workers:
            worker.process.join(_JOIN_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_JOIN_S)
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(clean=exc_type is None)

    # ------------------------------------------------------------------ running tasks
    def imap(self, function: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """``function(model, *task)`` in the workers, results in task order. Tasks are drawn
        as workers free up, at most two per worker ahead of the result yielded next, so a
        stream of a million items is never all queued. An exception a task raised is raised
        here at its turn, as in one process."""
        for worker in self._workers:
            if worker.task is not None:  # an earlier imap left unfinished: drop its result
                self._receive(worker, starting=False)
                worker.task = None
        tasks = iter(tasks)
        results: dict[int, tuple] = {}  # finished tasks not yet yielded
        idle = deque(self._workers)
        busy: dict[Connection, _Worker] = {}
        sent = done = 0
        exhausted = False
        while True:
            while idle and not exhausted and sent - done < 2 * self.workers:
                task = next(tasks, _END)
                if task is _END:
                    exhausted = True
                    break
                worker = idle.popleft()
                self._send(worker, (function, task))
                worker.task = sent
                busy[worker.conn] = worker
                sent += 1
            while done in results:
                status, value = results.pop(done)
                done += 1
                if status == "raise":
                    raise value
                yield value
            if exhausted and done == sent:
                return
            if done in results or (idle and not exhausted and sent - done < 2 * self.workers):
                continue
            for conn in _ready(list(busy.values()), None):
                worker = busy.pop(conn)
                status, *value = self._receive(worker, starting=False)
                if status == "raise":
                    exc, remote = value
                    exc.__cause__ = _RemoteTraceback(remote)
                    value = [exc]
                results[worker.task] = (status, value[0])
                worker.task = None
                idle.append(worker)

    def _send(self, worker: _Worker, message: Any) -> None:
        try:
            worker.conn.send(message)
        except OSError:  # its end is closed: it died while idle
            raise WorkerError(self._death(worker, "waiting for work")) from None

    def _receive(self, worker: _Worker, *, starting: bool) -> tuple:
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            pass  # it ended: why is below
        except Exception as exc:  # noqa: BLE001 - a result this process cannot unpickle
            raise WorkerError(
                f"a message from parallel worker {worker.slot} could not be read: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if starting and not worker.started:
            code = _exit_code(worker.process)
            what = f"parallel worker {worker.slot} exited with code {code} before it started"
            raise WorkerError(_start_failure(what))
        when = f"loading {self.model_name}" if starting else "running a batch"
        raise WorkerError(self._death(worker, when))

    def _death(self, worker: _Worker, when: str) -> str:
        code = _exit_code(worker.process)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by {name}"
            if -code == signal.SIGKILL:
                how += " (out of memory, or killed from outside)"
        elif code is None:
            how = "closed its pipe"
        else:
            how = f"exited with code {code}"
        lost = "its batch is lost" if worker.task is not None else "it has no batch"
        return (
            f"parallel worker {worker.slot} (pid {worker.process.pid}) {how} while {when} "
            f"({lost}; the other workers are stopped)"
        )


_END = object()


def _ready(workers: list[_Worker], timeout: float | None) -> list[Connection]:
    """The pipes of ``workers`` that have a message or are closed; a worker whose process
    ended counts as closed even if something else still holds its pipe's other end."""
    by_sentinel = {w.process.sentinel: w for w in workers}
    ready = wait([w.conn for w in workers] + list(by_sentinel), timeout)
    conns = {r for r in ready if isinstance(r, Connection)}
    for r in ready:
        if not isinstance(r, Connection):
            conns.add(by_sentinel[r].conn)  # recv() gives what it sent, then EOFError
    return list(conns)


def _exit_code(process: Any) -> int | None:
    process.join(_JOIN_S)
    return process.exitcode


def _start_failure(what: str) -> str:
    """``what`` went wrong before kettle's code ran in a worker, and the usual reason. Only
    multiprocessing's bootstrap runs there, and what fails in it is almost always its import
    of the main module: a script that calls ``embed(parallel=...)`` at import time starts
    workers again from inside each worker."""
    module = sys.modules.get("__mp_main__") or sys.modules.get("__main__")  # worker, parent
    main = getattr(module, "__file__", None)
    if not main:
        return what
    return (
        f"{what}. Worker processes import the main module again ({main}); a script that "
        "calls embed(..., parallel=...) when imported must make that call under an "
        '`if __name__ == "__main__":` guard: add the guard (the worker\'s traceback is on stderr)'
    )


class _RemoteTraceback(Exception):
    """The worker's traceback, chained to the exception a task raised there."""

    def __str__(self) -> str:
        return "\n\nin the parallel worker:\n" + self.args[0]


# ---------------------------------------------------------------------- the worker process
def _worker_main(conn: Connection, spec: tuple, slot: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn.send(("started",))
    try:
        model = _load(spec, slot)
    except BaseException as exc:  # noqa: BLE001 - every reason goes to the parent, in words
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        except Exception as exc:  # noqa: BLE001 - a task this process cannot unpickle
            message = exc
        if message is None:
            return
        try:
            if isinstance(message, Exception):
                raise message
            function, task = message
            reply: tuple = ("ok", function(model, *task))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent, at its turn
            reply = ("raise", exc, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a result or exception that cannot be pickled
            error = WorkerError(f"a parallel task's result could not be sent back: {exc}")
            conn.send(("raise", error, traceback.format_exc()))


def _load(spec: tuple, slot: int) -> Any:
    module, qualname, kwargs, device_ids = spec
    if device_ids and kwargs.get("providers"):
        device = device_ids[slot % len(device_ids)]
        kwargs["providers"] = [
            (p[0], {**p[1], "device_id": device}) if isinstance(p, tuple) and "CUDA" in p[0] else p
            for p in kwargs["providers"]
        ]
    cls = getattr(importlib.import_module(module), qualname)
    return cls(**kwargs)


def run_batch(model: Any, feeds: dict, mask: Any, step: tuple[str, dict]) -> list[Any]:
    """A worker's task: one padded batch through the session and the kind's last step."""
    name, options = step
    return list(getattr(model, name)(model.run_session(feeds), mask, **options))


def embed_images(model: Any, offset: int, items: list) -> Any:
    """A worker's task: one batch of images (errors name ``images[offset + i]``)."""
    return model.embed_batch(items, offset)


__all__ = [
    "START_TIMEOUT_S",
    "WorkerError",
    "WorkerPool",
    "embed_images",
    "run_batch",
    "step_spec",
    "workers_for",
]
