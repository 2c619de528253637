"""Delete what a Lambda never imports from a `pip install --target` tree.

Used on the runtime layer's python/ folder (layers/Makefile) and on the image's LAMBDA_TASK_ROOT
(Dockerfile), so both routes ship the same files. Standard library only: it runs on any Python,
including the Lambda base image, which has no findutils.

    python layers/prune.py DIR [--strip STRIP]

--strip names a binutils `strip` for the tree's architecture (aarch64-linux-gnu-strip for arm64):
it drops the symbol tables that only debuggers read (tokenizers and wrapt ship them: 4 MB); the
dynamic symbols the loader uses stay. Files with an RPATH/RUNPATH are left alone: auditwheel
rewrote those with patchelf, and strip breaks patchelf's layout (numpy's OpenBLAS stripped on
aarch64 fails to load: "ELF load command address/offset not page-aligned"). The layer's size
table in README is measured with it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

# Folders and files relative to DIR that nothing on Lambda imports.
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
    "onnxruntime/training",
    # numpy: C headers, static and pkg-config libraries, the Fortran wrapper generator
    "numpy/_core/include",
    "numpy/_core/lib",
    "numpy/f2py",
    "numpy/_pyinstaller",
    "numpy/conftest.py",
)
# Files matched below DIR by glob. Each is checked by `readelf -d` / grep before it went here:
DROP_GLOBS = (
    # onnxruntime's C API for ctypes and C/C++ users (25 MB on aarch64, 29 MB on x86_64). The
    # Python API loads capi/onnxruntime_pybind11_state*.so, which carries the whole runtime and
    # does not link this library (its NEEDED entries are libc, libstdc++, libm, libgcc_s, libdl,
    # librt, libpthread, ld-linux only), and no .py file in the wheel opens it by name.
    "onnxruntime/capi/libonnxruntime.so*",
    # numpy's extension modules that only its test suite imports (numpy/conftest.py and
    # numpy/_core/tests, both gone): _simd exposes the SIMD dispatch to tests, the rest are
    # test ufuncs and dtypes.
    "numpy/_core/_simd.*.so",
    "numpy/_core/_multiarray_tests.*.so",
    "numpy/_core/_umath_tests.*.so",
    "numpy/_core/_rational_tests.*.so",
    "numpy/_core/_struct_ufunc_tests.*.so",
    "numpy/_core/_operand_flag_tests.*.so",
    # stub-only packages (wrapt-stubs): read by type checkers, never imported
    "*-stubs",
)
# Folder names dropped wherever they are below a package: test suites and stale byte code.
# numpy/testing is a module some libraries import, not a test suite: kept.
DROP_DIR_NAMES = {"tests", "test", "__pycache__"}
# Build inputs and type stubs, not run-time files.
DROP_SUFFIXES = {".a", ".c", ".h", ".pyx", ".pxd", ".pyi"}


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _has_search_path(path: Path, readelf: str) -> bool:
    dynamic = subprocess.run(
        [readelf, "--dynamic", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return "(RPATH)" in dynamic or "(RUNPATH)" in dynamic


def strip_symbols(root: Path, strip: str) -> None:
    """``strip --strip-unneeded`` the ELF shared objects under root that patchelf never touched."""
    readelf = strip[: -len("strip")] + "readelf" if strip.endswith("strip") else "readelf"
    shared = [
        p
        for p in sorted(root.rglob("*.so*"))
        if p.is_file() and not p.is_symlink() and _is_elf(p) and not _has_search_path(p, readelf)
    ]
    if shared:
        subprocess.run([strip, "--strip-unneeded", *map(str, shared)], check=True)


def prune(root: Path, strip: str | None = None) -> tuple[int, int]:
    """Prune root in place; return its size in bytes before and after."""
    before = tree_bytes(root)
    for rel in DROP_PATHS:
        _remove(root / rel)
    for pattern in DROP_GLOBS:
        for path in root.glob(pattern):
            _remove(path)
    for package in [p for p in root.iterdir() if p.is_dir()]:
        for path in sorted(package.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and path.name in DROP_DIR_NAMES:
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and path.suffix in DROP_SUFFIXES:
                path.unlink()
    for path in root.glob("*.pyi"):  # top-level stub modules
        path.unlink()
    if strip:
        strip_symbols(root, strip)
    return before, tree_bytes(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a pip install --target folder")
    parser.add_argument("--strip", help="binutils strip for the folder's architecture")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a folder")
    if args.strip and not shutil.which(args.strip):
        parser.error(f"--strip {args.strip}: not found (Debian: binutils-aarch64-linux-gnu)")
    before, after = prune(args.dir, args.strip)
    print(f"prune: {args.dir} {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
