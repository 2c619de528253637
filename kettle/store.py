"""Find a baked model on disk and check it against its manifest. Never any network."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kettle.errors import check_model_name
from kettle.manifest import MANIFEST_NAME, Manifest, ManifestError
from kettle.registry import ModelDescription, UnknownModelError, get_model, is_builtin

ENV_MODELS_DIR = "KETTLE_MODELS_DIR"
LAYER_MODELS_DIR = Path("/opt/models")  # where a Lambda layer's models/ folder is mounted


class ModelNotBakedError(LookupError):
    """The model asked for has no bake in any models directory."""


@dataclass(frozen=True)
class BakedModel:
    """A verified model directory."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file


def search_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where models are looked for, in order: the argument, $KETTLE_MODELS_DIR, /opt/models,
    ./models. An explicit argument is the only place searched."""
    if models_dir is not None:
        return [Path(models_dir)]
    dirs = []
    if os.environ.get(ENV_MODELS_DIR):
        dirs.append(Path(os.environ[ENV_MODELS_DIR]))
    dirs += [LAYER_MODELS_DIR, Path.cwd() / "models"]
    return dirs


def list_baked(models_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the models baked in the searched directories (first one wins on duplicates)."""
    names: list[str] = []
    for base in search_dirs(models_dir):
        if not base.is_dir():
            continue
        for manifest in sorted(base.glob(f"**/{MANIFEST_NAME}")):
            if any(part.startswith(".") for part in manifest.relative_to(base).parts):
                continue  # .staging/ of a bake in progress (or killed): never a model
            try:
                name = Manifest.read(manifest.parent).name
            except ManifestError:
                continue
            if name not in names:
                names.append(name)
    return names


def bake_command(name: str) -> str:
    """The shell command that bakes ``name``: the registry's name alone, or for a model added at
    run time (``add_custom_model``), its source and settings as the custom-model bake takes them."""
    try:
        described = get_model(name)
    except UnknownModelError:
        return f"python -m models_bake {name} --source DIR --out models"
    if is_builtin(described.name):
        return f"python -m models_bake {described.name} --out models"
    source = described.sources[0]
    flags = [f"--source {source.ref}", f"--kind {described.kind}"]
    if described.kind == "dense":
        flags += [
            f"--pooling {described.pooling}",
            "--normalize" if described.normalize else "--no-normalize",
        ]
    flags.append(f"--max-length {described.max_length}")
    return f"python -m models_bake {described.name} {' '.join(flags)} --out models"


def load_bake(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    kind: str | None = None,
    verify: bool = True,
) -> BakedModel:
    """The bake in the folder ``path``: its manifest read (and its files checked when
    ``verify``); ``name`` and ``kind``, when given, must be the manifest's."""
    path = Path(path)
    manifest = Manifest.read(path)
    if name is not None and manifest.name.lower() != name.lower():
        raise ManifestError(f"{path}: manifest names {manifest.name!r}, not {name!r}")
    if kind is not None and manifest.kind != kind:
        raise ValueError(f"{manifest.name} is a {manifest.kind} model, not {kind}")
    if verify:
        manifest.verify(path)
    return BakedModel(path, manifest)


def find_model(
    name: str,
    models_dir: str | os.PathLike | None = None,
    *,
    kind: str | None = None,
    verify: bool = True,
) -> BakedModel:
    """The baked directory of ``name``, its files checked against the manifest.

    Raises ModelNotBakedError listing what is baked and the command that bakes ``name``, and
    ManifestError naming a file that does not match, and ModelNameError (a KettleInputError)
    for a name shaped as a path out of the models directory ("../x", "/abs"): names are names.
    """
    check_model_name(name)
    try:
        description: ModelDescription | None = get_model(name)
    except UnknownModelError:
        description = None  # a model baked from a local directory need not be in the registry
    rel = check_model_name(description.dir_name if description else name)
    for base in search_dirs(models_dir):
        candidate = base / rel
        if (candidate / MANIFEST_NAME).is_file():
            return load_bake(candidate, name, kind=kind, verify=verify)
    baked = list_baked(models_dir)
    if description is None:  # a local bake named in another case: names are case-insensitive
        same = [b for b in baked if b.lower() == name.lower() and b != name]
        if same:
            return find_model(same[0], models_dir, kind=kind, verify=verify)
    where = ", ".join(str(d) for d in search_dirs(models_dir))
    hint = (
        f"bake it with: {bake_command(description.name)}"
        if description
        else f"it is not in kettle's registry (bake a folder of your own: {bake_command(name)})"
    )
    raise ModelNotBakedError(
        f"model {name!r} is not baked in {where}; baked: {', '.join(baked) or 'none'}; {hint} "
        "(kettle never downloads at run time)"
    )


def bake_size_gb(baked: BakedModel) -> float:
    """The size of a bake's files in GB (10**9 bytes, as FastEmbed's size_in_GB)."""
    return sum((baked.path / rel).stat().st_size for rel in baked.manifest.files) / 1e9
