import json
import shutil

import pytest

from kettle import store
from kettle.manifest import Manifest, ManifestError
from kettle.registry import DEFAULT_MODEL, UnknownModelError, get_model
from kettle.store import ModelNotBakedError, find_model, list_baked


@pytest.fixture
def copied(models_dir, tmp_path):
    """A private copy of the default bake, safe to tamper with."""
    shutil.copytree(models_dir / DEFAULT_MODEL, tmp_path / DEFAULT_MODEL)
    return tmp_path


def test_find_in_explicit_dir(copied):
    baked = find_model(DEFAULT_MODEL, copied)
    assert baked.path == copied / DEFAULT_MODEL
    assert baked.manifest.dim == 384 and baked.model_path.is_file()


def test_search_order_env_then_layer_then_cwd(copied, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(store, "LAYER_MODELS_DIR", empty)
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(copied))
    assert find_model(DEFAULT_MODEL).path == copied / DEFAULT_MODEL
    monkeypatch.delenv("KETTLE_MODELS_DIR")
    monkeypatch.setattr(store, "LAYER_MODELS_DIR", copied)
    assert find_model(DEFAULT_MODEL).path == copied / DEFAULT_MODEL
    monkeypatch.setattr(store, "LAYER_MODELS_DIR", empty)
    (tmp_path / "models").symlink_to(copied)
    assert find_model(DEFAULT_MODEL).path.resolve() == (copied / DEFAULT_MODEL).resolve()


def test_not_baked_lists_baked_and_bake_command(copied):
    with pytest.raises(ModelNotBakedError) as err:
        find_model("BAAI/bge-small-en-v1.5", copied)
    message = str(err.value)
    assert DEFAULT_MODEL in message  # what is baked
    assert "python -m models_bake BAAI/bge-small-en-v1.5" in message  # how to bake it


def test_unknown_model_not_baked(copied):
    with pytest.raises(ModelNotBakedError, match="not in kettle's registry"):
        find_model("acme/nothing", copied)
    with pytest.raises(UnknownModelError, match="kettle knows"):
        get_model("acme/nothing")


def test_tampered_file_is_named(copied):
    tokenizer = copied / DEFAULT_MODEL / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace("[UNK]", "[UNX]", 1))
    with pytest.raises(ManifestError, match="tokenizer.json: sha256"):
        find_model(DEFAULT_MODEL, copied)


def test_missing_file_is_named(copied):
    (copied / DEFAULT_MODEL / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="model.onnx: listed in manifest.json but missing"):
        find_model(DEFAULT_MODEL, copied)


def test_wrong_kind_is_refused(copied):
    with pytest.raises(ValueError, match="is a dense model, not sparse"):
        find_model(DEFAULT_MODEL, copied, kind="sparse")


def test_manifest_format_checked(copied):
    path = copied / DEFAULT_MODEL / "manifest.json"
    data = json.loads(path.read_text())
    data["format"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="format 99"):
        Manifest.read(path.parent)


def test_list_baked(copied):
    assert list_baked(copied) == [DEFAULT_MODEL]


def _bake_named(source, target, name):
    """A working bake at ``target`` whose manifest calls it ``name`` (files linked, not copied)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name != "manifest.json":
            (target / path.name).symlink_to(path)
    manifest = json.loads((source / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "name": name}))


@pytest.mark.parametrize("shape", ["parent", "absolute", "inner-parent", "dot", "backslash"])
def test_a_model_name_is_a_name_never_a_path_out_of_models_dir(models_dir, tmp_path, shape):
    """A bake outside models_dir, named as a path to it, is refused: never loaded."""
    from kettle import TextEmbedding
    from kettle.errors import KettleInputError

    inside = tmp_path / "models"
    inside.mkdir()
    outside = tmp_path / "evil-bake"
    names = {
        "parent": "../evil-bake",
        "absolute": str(outside),
        "inner-parent": "org/../../evil-bake",
        "dot": "./../evil-bake",
        "backslash": "..\\evil-bake",
    }
    name = names[shape]
    _bake_named(models_dir / DEFAULT_MODEL, outside, name)
    if shape == "backslash":  # a folder that is literally named so, inside models_dir
        _bake_named(models_dir / DEFAULT_MODEL, inside / name, name)
    with pytest.raises(KettleInputError, match="model name") as caught:
        TextEmbedding(name, models_dir=inside)
    assert caught.value.field == "model_name" and isinstance(caught.value, ValueError)
    assert repr(name) in str(caught.value)
    with pytest.raises(KettleInputError):
        find_model(name, inside)


def test_names_with_an_organisation_still_load(copied):
    assert find_model(DEFAULT_MODEL, copied).path == copied / DEFAULT_MODEL
