"""Issue 25: ``parallel=`` never hangs, and works without /dev/shm (as on AWS Lambda).

Each case runs in its own Python process under a subprocess timeout: a regression to a hang
fails the test at that bound instead of hanging the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import MINILM, REPO

BOUND_S = 120  # a safety timeout for each script, not a timed assertion

HEAD = """\
import os, signal, sys
import numpy as np
from kettle.dense import TextEmbedding
from kettle.parallel import WorkerError, WorkerPool
TEXTS = [("tea kettle water " * (i % 13 + 1)) + str(i) for i in range(60)]
"""

# Hides /dev the way Lambda lacks /dev/shm: a fresh /dev with only the character devices a
# Python process opens, so sem_open() and multiprocessing's shared memory find no /dev/shm.
# Only this mount namespace sees it.
NO_DEV_SHM = """\
set -eu
dev="$1"; shift
mount -t tmpfs -o size=1m,mode=755 kettle-dev "$dev"
for d in null zero random urandom full tty; do touch "$dev/$d"; mount --bind "/dev/$d" "$dev/$d"; done
ln -s /proc/self/fd "$dev/fd"
mount --bind "$dev" /dev
exec "$@"
"""


def run_script(
    tmp_path: Path, body: str, *, guard: bool = True, top: str = "", prefix=()
) -> tuple[int, str]:
    """Run HEAD + ``top`` + body as a script, body under ``if __name__ == "__main__":`` unless
    ``guard`` is False; (exit code, stdout + stderr). Still running after BOUND_S: a failure."""
    if guard:
        body = 'if __name__ == "__main__":\n' + textwrap.indent(body, "    ")
    script = tmp_path / "script.py"
    script.write_text(HEAD + top + body)
    env = {**os.environ, "PYTHONPATH": str(REPO), "KETTLE_MODELS_DIR": str(REPO / "models")}
    try:
        done = subprocess.run(
            [*prefix, sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=BOUND_S,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"no result after {BOUND_S} s (a hang): {exc.stderr!s:.2000}")
    return done.returncode, done.stdout + done.stderr


def error_line(output: str) -> str:
    """The parent's WorkerError line (the script's last traceback)."""
    lines = [line for line in output.splitlines() if line.startswith("kettle.parallel.WorkerError")]
    assert lines, output[-3000:]
    return lines[-1]


def test_a_script_without_the_main_guard_says_to_add_it(models_dir, tmp_path):
    body = "model = TextEmbedding(threads=1)\nprint(len(list(model.embed(TEXTS, 4, parallel=2))))\n"
    code, output = run_script(tmp_path, body, guard=False)
    assert code != 0
    line = error_line(output)
    assert str(tmp_path / "script.py") in line
    assert '`if __name__ == "__main__":` guard: add the guard' in line, line


def test_a_worker_that_cannot_load_its_model_is_an_error_that_says_why(models_dir, tmp_path):
    copy = tmp_path / "models" / MINILM
    shutil.copytree(models_dir / MINILM, copy)
    body = f"""\
model = TextEmbedding(models_dir={str(tmp_path / "models")!r}, threads=1)  # verified here
os.remove({str(copy / "model.onnx")!r})  # then gone before the workers load it
list(model.embed(TEXTS, 4, parallel=2))
"""
    code, output = run_script(tmp_path, body)
    assert code != 0
    line = error_line(output)
    assert "could not load sentence-transformers/all-MiniLM-L6-v2" in line, line
    assert "model.onnx" in line, line


def test_a_worker_killed_in_a_batch_is_an_error(models_dir, tmp_path):
    top = """\
def oom(model, i):  # what the kernel's OOM killer does to a worker in the middle of a batch
    os.kill(os.getpid(), signal.SIGKILL)
"""
    body = """\
model = TextEmbedding(threads=1)
with WorkerPool(model, 2) as pool:
    list(pool.imap(oom, [(i,) for i in range(4)]))
"""
    code, output = run_script(tmp_path, body, top=top)
    assert code != 0
    line = error_line(output)
    assert "was killed by SIGKILL (out of memory" in line and "running a batch" in line, line


def test_a_worker_killed_between_batches_is_an_error(models_dir, tmp_path):
    body = """\
import multiprocessing
from multiprocessing.connection import wait

def texts():
    for i, text in enumerate(TEXTS):
        if i == 5:  # the workers are up, idle: kill one and wait until it is gone
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            assert wait([victim.sentinel], 30)
        yield text

model = TextEmbedding(threads=1)
list(model.embed(texts(), 4, parallel=2))
"""
    code, output = run_script(tmp_path, body)
    assert code != 0
    line = error_line(output)
    assert "was killed by SIGKILL" in line, line


def no_dev_shm_prefix(tmp_path: Path) -> list[str]:
    """The command prefix that runs a program in a mount namespace without /dev/shm."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing: `make system-tools` installs it")
    setup = tmp_path / "no_dev_shm.sh"
    setup.write_text(NO_DEV_SHM)
    dev = tmp_path / "dev"
    dev.mkdir()
    # root makes a mount namespace; anyone else needs a user namespace mapped to root too
    namespace = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    return [unshare, *namespace, "sh", str(setup), str(dev)]


def test_parallel_without_dev_shm_gives_the_single_process_vectors(models_dir, tmp_path):
    body = """\
import multiprocessing
assert not os.path.exists("/dev/shm"), os.listdir("/dev")
try:
    multiprocessing.Lock()  # what multiprocessing.Pool needs, and fails to make on Lambda
except OSError as exc:
    print("no semaphores:", type(exc).__name__)
model = TextEmbedding(threads=1)
single = np.stack(list(model.embed(TEXTS, 4)))
both = np.stack(list(model.embed(iter(TEXTS), 4, parallel=2)))
np.testing.assert_array_equal(both, single)
print("equal:", len(both))
"""
    code, output = run_script(tmp_path, body, prefix=no_dev_shm_prefix(tmp_path))
    assert code == 0, output[-3000:]
    assert "no semaphores: FileNotFoundError" in output  # the namespace is Lambda-like
    assert "equal: 60" in output
