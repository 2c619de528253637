"""Powertools Logger and Metrics, one of each per process, shared by every entry point; X-Ray
tracing only when it is on.

Powertools' Tracer imports the X-Ray SDK (and botocore through it) even when tracing is disabled:
a quarter of a second of a cold start. ``traced`` wraps an entry point with the Tracer only where
tracing is on (on Lambda, POWERTOOLS_TRACE_DISABLED unset), and ``tracer`` is created on first
use, so a cold start with tracing off never imports the SDK.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "kettle"

logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "kettle", service=SERVICE
)

F = TypeVar("F", bound=Callable[..., Any])
_TRUE = {"1", "true", "yes", "on", "y"}


def tracing_enabled() -> bool:
    """Powertools' own rule: off when POWERTOOLS_TRACE_DISABLED is true, outside Lambda
    (no LAMBDA_TASK_ROOT) and under SAM local or Chalice local."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUE:
        return False
    if not os.environ.get("LAMBDA_TASK_ROOT"):
        return False
    return not (os.environ.get("AWS_SAM_LOCAL") or os.environ.get("AWS_CHALICE_CLI_MODE"))


_tracer: Any = None


def get_tracer() -> Any:
    """The process's Powertools Tracer (imports the X-Ray SDK)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(service=SERVICE)
    return _tracer


def traced(handler: F) -> F:
    """``handler`` under Tracer.capture_lambda_handler when tracing is on; as it is otherwise."""
    if not tracing_enabled():
        return handler
    return get_tracer().capture_lambda_handler(capture_response=False)(handler)


@contextmanager
def timed(metric: str) -> Iterator[None]:
    """Add ``metric`` (milliseconds) for the time the block takes, whether or not it raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        milliseconds = (time.perf_counter() - started) * 1000
        metrics.add_metric(name=metric, unit=MetricUnit.Milliseconds, value=milliseconds)


def count(**counts: int) -> None:
    """Add count metrics: count(Texts=3, Tokens=40)."""
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def __getattr__(name: str) -> Any:
    if name == "tracer":  # `from handler.observability import tracer` still works, lazily
        return get_tracer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
