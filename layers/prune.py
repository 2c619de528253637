"""Delete what a Lambda never imports from a `pip install --target` tree.

Used on the runtime layer's python/ folder (layers/Makefile) and on the image's LAMBDA_TASK_ROOT
(Dockerfile), so both routes ship the same files. Standard library only: it runs on any Python,
including the Lambda base image, which has no findutils.

    python layers/prune.py DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Folders relative to DIR that nothing on Lambda imports.
DROP_PATHS = (
    # console scripts (f2py, numpy-config, onnxruntime_test, ...)
    "bin",
    # onnxruntime: conversion, quantization and benchmark tooling (kettle quantizes at bake time,
    # with onnx); the ONNX-backend shim imports onnx. Inference needs onnxruntime.capi only.
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
    "onnxruntime/backend",
    # numpy: C headers, static and pkg-config libraries, the Fortran wrapper generator
    "numpy/_core/include",
    "numpy/_core/lib",
    "numpy/f2py",
    "numpy/_pyinstaller",
)
# Folder names dropped wherever they are below a package: test suites and stale byte code.
# numpy/testing is a module some libraries import, not a test suite: kept.
DROP_DIR_NAMES = {"tests", "test", "__pycache__"}
# Build inputs, not run-time files.
DROP_SUFFIXES = {".a", ".c", ".h", ".pyx", ".pxd"}


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def prune(root: Path) -> tuple[int, int]:
    """Prune root in place; return its size in bytes before and after."""
    before = tree_bytes(root)
    for rel in DROP_PATHS:
        shutil.rmtree(root / rel, ignore_errors=True)
    for package in [p for p in root.iterdir() if p.is_dir()]:
        for path in sorted(package.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and path.name in DROP_DIR_NAMES:
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and path.suffix in DROP_SUFFIXES:
                path.unlink()
    return before, tree_bytes(root)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python prune.py DIR (an existing folder)", file=sys.stderr)
        return 2
    before, after = prune(Path(argv[0]))
    print(f"prune: {argv[0]} {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
