"""docs/architecture.md draws the house as the code builds it: its drawing and module table are
current, every module says its concept, and the arrows point the one way the house allows."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("architecture", REPO / "tools" / "architecture.py")
architecture = importlib.util.module_from_spec(_spec)
sys.modules["architecture"] = architecture  # dataclasses look their module up there
_spec.loader.exec_module(architecture)


def test_drawing_and_table_are_current(capsys):
    assert architecture.main(["--check"]) == 0, capsys.readouterr().out


def test_every_module_states_its_concept():
    missing = [m.name for m in architecture.modules() if not m.concept]
    assert not missing, f"modules without a docstring: {missing}"


def test_arrows_point_at_kettle_only():
    crossing = architecture.arrows(architecture.modules())
    assert not [(a, b) for a, b in crossing if a == "kettle"], "kettle imports the other rooms"
    assert not [
        (a, b) for a, b in crossing if a.startswith("models_bake") and b.startswith("handler")
    ]
    assert not [
        (a, b) for a, b in crossing if a.startswith("handler") and b.startswith("models_bake")
    ]
    assert ("handler", "kettle") in crossing and ("models_bake", "kettle") in crossing


def test_a_stale_page_is_caught(tmp_path, monkeypatch):
    page = tmp_path / "architecture.md"
    page.write_text((REPO / "docs" / "architecture.md").read_text().replace("kettle/dense.py", "x"))
    svg = tmp_path / "architecture.svg"
    svg.write_text((REPO / "docs" / "architecture.svg").read_text())
    monkeypatch.setattr(architecture, "PAGE", page)
    monkeypatch.setattr(architecture, "SVG", svg)
    assert architecture.main(["--check"]) == 1
    assert architecture.main([]) == 0 and architecture.main(["--check"]) == 0
