"""manifest.json: what a baked model directory holds, written by models_bake, read by the runtime.

One schema, imported by both sides, so they cannot disagree on the format.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A model directory whose manifest is missing, unreadable or does not match its files."""


def sha256_file(path: Path) -> str:
    """The file's sha256, hashed from a memory map in one call: hashlib lets go of the GIL for
    all of it, where a loop over chunks takes the GIL back for every read and update (a model
    loading in a thread beside other Python waits for it each time: handler.preload)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:  # an empty file cannot be mapped
            return hashlib.sha256().hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


@dataclass
class Manifest:
    """The record of one bake."""

    name: str
    kind: str
    dim: int
    pooling: str
    normalize: bool
    max_length: int
    source: dict[str, Any]  # {"type", "ref", "version", "subdir"?}
    files: dict[str, str]  # relative path -> sha256
    model_file: str = "model.onnx"
    query_prefix: str = ""
    passage_prefix: str = ""
    # sentence-transformers' named prompts (config_sentence_transformers.json): name -> prefix
    prompts: dict[str, str] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None  # None: fp32
    fidelity: dict[str, Any] | None = None
    onnx: dict[str, Any] = field(default_factory=dict)  # {"inputs": [...], "output": "..."}
    # dense models: per-dimension output ranges for int8/uint8 (kettle.output.OutputCalibration)
    calibration: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kettle_version: str = ""
    format: int = FORMAT_VERSION

    @property
    def fingerprint(self) -> str:
        """A short id of exactly these weights and settings: vectors with different fingerprints
        must not be mixed."""
        digest = hashlib.sha256(self.files[self.model_file].encode())
        digest.update(json.dumps([self.pooling, self.normalize, self.max_length]).encode())
        return digest.hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = Path(directory) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(
                f"{directory}: no {MANIFEST_NAME}; is this a kettle bake?"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
        if data.get("format") != FORMAT_VERSION:
            raise ManifestError(
                f"{path}: manifest format {data.get('format')!r}, this kettle reads {FORMAT_VERSION}"
            )
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ManifestError(f"{path}: {exc}") from None

    def verify(self, directory: Path) -> None:
        """Raise ManifestError naming the first file that is missing or whose sha256 differs."""
        directory = Path(directory)
        for rel, expected in sorted(self.files.items()):
            path = directory / rel
            if not path.is_file():
                raise ManifestError(f"{path}: listed in {MANIFEST_NAME} but missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ManifestError(
                    f"{path}: sha256 {actual[:12]}… does not match {MANIFEST_NAME} "
                    f"({expected[:12]}…); re-bake the model"
                )
