"""What `python -m models_bake` prints: one progress line per step with the elapsed time, none of
ONNX Runtime's optimizer warnings, nothing with -q; bad input is one line saying what to do."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.bake.test_custom_models import run_cli
from tests.conftest import FIXTURES

LINE = re.compile(r"^models_bake: \[\s*\d+\.\ds\] (\w+)")


@pytest.mark.bakes
def test_each_step_is_one_line_with_its_elapsed_time(tmp_path):
    out = run_cli(
        "acme/mpnet-tiny", "--source", str(FIXTURES / "mpnet-tiny"), "--out", str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    steps = [m.group(1) for line in lines if (m := LINE.match(line))]
    assert len(steps) == len(lines), out.stderr  # every line is a progress line
    for step in ("fetch", "convert", "fuse", "calibrate", "quantize", "verify"):
        assert step in steps, out.stderr
    assert steps.index("fetch") < steps.index("convert") < steps.index("quantize")
    elapsed = [float(re.search(r"\[\s*([\d.]+)s\]", line).group(1)) for line in lines]
    assert elapsed == sorted(elapsed)
    assert "Model producer not matched" not in out.stderr and "WARNING" not in out.stderr
    assert "baked in" in out.stdout


@pytest.mark.bakes
def test_quiet_prints_no_progress(tmp_path):
    out = run_cli(
        "acme/mpnet-tiny", "--source", str(FIXTURES / "mpnet-tiny"), "--out", str(tmp_path), "-q"
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_a_folder_without_weights_is_one_line_saying_what_to_do(tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "modules.json", "1_Pooling"):
        src = FIXTURES / "mpnet-tiny" / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, folder / name)
    out = run_cli("acme/empty", "--source", str(folder), "--out", str(tmp_path / "o"), "-q")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.splitlines()
    assert "no model.safetensors" in line and "--source must be a folder with config.json" in line


def test_a_model_type_no_converter_knows_says_what_to_do(tmp_path):
    folder = tmp_path / "wizard"
    shutil.copytree(FIXTURES / "mpnet-tiny", folder)
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"mpnet"', '"wizard"'))
    out = run_cli("acme/wizard", "--source", str(folder), "--out", str(tmp_path / "o"), "-q")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.splitlines()
    assert "model_type 'wizard'" in line and "bake a checkpoint of one of these" in line
