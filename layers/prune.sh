#!/bin/sh
# Delete what a Lambda never imports from a pip --target tree (the runtime layer's python/ folder,
# or the image's LAMBDA_TASK_ROOT). Shared by layers/Makefile and the Dockerfile, so both routes
# ship the same files. Usage: prune.sh DIR
set -eu

dir=${1:?usage: prune.sh DIR}
[ -d "$dir" ] || { echo "prune.sh: $dir is not a directory" >&2; exit 1; }
before=$(du -sk "$dir" | cut -f1)

# Console scripts (f2py, numpy-config, onnxruntime_test, ...): nothing runs them on Lambda.
rm -rf "$dir/bin"

# onnxruntime: the model-conversion, quantization and benchmark tooling (kettle quantizes at bake
# time, with onnx; the runtime only needs onnxruntime.capi). The ONNX-backend shim imports onnx.
rm -rf "$dir/onnxruntime/transformers" "$dir/onnxruntime/tools" \
    "$dir/onnxruntime/quantization" "$dir/onnxruntime/datasets" "$dir/onnxruntime/backend"

# numpy: C headers, static libraries, pkg-config files and the Fortran wrapper generator are for
# building extensions, not running them.
rm -rf "$dir/numpy/_core/include" "$dir/numpy/_core/lib" "$dir/numpy/f2py" \
    "$dir/numpy/_pyinstaller"

# Test suites of every package (numpy's are the big ones). numpy/testing is kept: it is a module,
# not a test suite, and some libraries import it.
find "$dir" -depth -type d \( -name tests -o -name test \) -path "*/*" -exec rm -rf {} +

# Byte code compiled for another interpreter, and stray build files.
find "$dir" -depth -type d -name __pycache__ -exec rm -rf {} +
find "$dir" -type f \( -name '*.a' -o -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' \) -delete

after=$(du -sk "$dir" | cut -f1)
echo "prune.sh: $dir ${before}K -> ${after}K"
