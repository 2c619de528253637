"""The ONNX Runtime session: options, threads from the CPU share this process really has, providers."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # onnxruntime is imported when a session is made: counting tokens needs none
    import onnxruntime as ort


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup quota (v2 cpu.max, then v1 cfs), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup quota; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.floor(limit)))
    return max(1, cpus)


def create_session(
    model_path: str | os.PathLike,
    threads: int | None = None,
    providers: Sequence[str | tuple[str, dict]] | None = None,
) -> ort.InferenceSession:
    """An inference session tuned for batched CPU inference of a transformer encoder."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if options.intra_op_num_threads == 1:
        # One thread: don't spin a pool that has nobody to wait for.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
    )
