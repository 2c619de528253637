"""Output precision and Matryoshka dimensions of dense vectors: the arithmetic after pooling.

``quantize_embeddings`` is sentence-transformers' function (same name, arguments and codes):
``binary`` / ``ubinary`` pack one bit per dimension (value > 0) into bytes (binary as int8, the
byte - 128); ``int8`` / ``uint8`` cut each dimension into 256 steps between its ``ranges``
(``[2, dim]``: minimums, maximums) or the ranges of ``calibration_embeddings``.

Where kettle differs on purpose: sentence-transformers, given neither, calibrates on the
embeddings being quantized, so a text's codes depend on what else is in the call; kettle's models
carry per-dimension ranges measured once at bake time (``OutputCalibration``, in the manifest),
so the same text always gives the same codes. Values outside the ranges are clipped to the end
codes (sentence-transformers lets them wrap around), and a dimension that never varies (two of
all-MiniLM-L6-v2's are always 0) is cut over [-1, 1] rather than divided by 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
CALIBRATED = ("int8", "uint8")


class InvalidDimensionsError(ValueError):
    """``dimensions`` / ``truncate_dim`` outside 1..the model's dimension."""


class CalibrationMissingError(ValueError):
    """int8/uint8 output asked of a bake that carries no calibration ranges."""


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def quantize_embeddings(
    embeddings: np.ndarray,
    precision: Precision,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings``; out-of-range values clip (see module)."""
    check_precision(precision)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if precision == "float32":
        return embeddings
    if precision in ("binary", "ubinary"):
        packed = np.packbits(embeddings > 0, axis=-1)
        return (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed
    if ranges is None:
        source = embeddings if calibration_embeddings is None else calibration_embeddings
        source = np.asarray(source, dtype=np.float32).reshape(-1, embeddings.shape[-1])
        ranges = np.vstack((source.min(axis=0), source.max(axis=0)))
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, embeddings.shape[-1]):
        raise ValueError(
            f"ranges must have shape (2, {embeddings.shape[-1]}), got {tuple(ranges.shape)}"
        )
    starts, ends = ranges[0], ranges[1]
    flat = ends <= starts  # one value seen: the range of unit vectors, rather than a division by 0
    starts = np.where(flat, np.float32(-1), starts)
    steps = (np.where(flat, np.float32(1), ends) - starts) / np.float32(255)
    # float32 and truncated toward zero, as sentence-transformers computes it; clipped first.
    levels = np.clip((embeddings - starts) / steps, 0, 255)
    return (levels - 128).astype(np.int8) if precision == "int8" else levels.astype(np.uint8)


def truncate_dim(
    vectors: np.ndarray, dimensions: int | None, renormalize: bool, name: str = "the model"
) -> np.ndarray:
    """The first ``dimensions`` of each row (Matryoshka), unit length again if ``renormalize``."""
    dim = vectors.shape[-1]
    if dimensions is None or dimensions == dim:
        return vectors
    check_dimensions(dimensions, dim, name)
    vectors = vectors[..., :dimensions]
    if renormalize:
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    return vectors.astype(np.float32, copy=False)


def check_dimensions(dimensions: Any, dim: int, name: str = "the model") -> None:
    if isinstance(dimensions, bool) or not isinstance(dimensions, int | np.integer):
        raise TypeError(f"dimensions must be an int, not {type(dimensions).__name__}")
    if not 1 <= dimensions <= dim:
        raise InvalidDimensionsError(
            f"dimensions is {dimensions}; {name} makes {dim}-dimensional vectors"
        )


@dataclass(frozen=True)
class OutputCalibration:
    """Per-dimension ranges of a model's vectors over calibration texts, measured at bake time.

    ``unit`` and ``raw``: ``[2, dim]`` minimums and maximums of the unit-length and of the pooled
    (not normalised) vectors. ``kept_norm[n - 1]``: the median length of a unit vector's first
    ``n`` dimensions; a vector cut to ``n`` and made unit again is about ``1 / kept_norm`` times
    larger, so its ranges are the unit ranges scaled by that (one fixed factor per ``n``, so
    codes still depend on the text alone).
    """

    unit: np.ndarray
    raw: np.ndarray
    kept_norm: np.ndarray
    texts: int = 0
    source: str = ""

    @classmethod
    def measure(cls, raw_vectors: np.ndarray, source: str = "") -> OutputCalibration:
        """From the pooled (not normalised) vectors of the calibration texts, ``[n, dim]``."""
        raw = np.asarray(raw_vectors, dtype=np.float64)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        unit = raw / np.where(norms == 0, 1, norms)
        kept = np.sqrt(np.cumsum(unit**2, axis=1))
        return cls(
            unit=np.vstack((unit.min(0), unit.max(0))).astype(np.float32),
            raw=np.vstack((raw.min(0), raw.max(0))).astype(np.float32),
            kept_norm=np.median(kept, axis=0).astype(np.float32),
            texts=len(raw),
            source=source,
        )

    def ranges(self, dimensions: int, normalized: bool, renormalized: bool) -> np.ndarray:
        """The ``[2, dimensions]`` ranges of vectors made as asked: unit or raw, cut to
        ``dimensions`` and (``renormalized``) made unit again."""
        if not normalized:
            return self.raw[:, :dimensions]
        ranges = self.unit[:, :dimensions]
        if renormalized and dimensions < self.unit.shape[1]:
            ranges = ranges / max(float(self.kept_norm[dimensions - 1]), 1e-6)
        return ranges.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        def rounded(a: np.ndarray) -> list:
            return np.round(a.astype(np.float64), 7).tolist()

        return {
            "texts": self.texts,
            "source": self.source,
            "unit": rounded(self.unit),
            "raw": rounded(self.raw),
            "kept_norm": rounded(self.kept_norm),
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> OutputCalibration:
        return cls(
            unit=np.asarray(record["unit"], dtype=np.float32),
            raw=np.asarray(record["raw"], dtype=np.float32),
            kept_norm=np.asarray(record["kept_norm"], dtype=np.float32),
            texts=int(record.get("texts", 0)),
            source=str(record.get("source", "")),
        )


@dataclass(frozen=True)
class OutputSpec:
    """What happens to a batch of pooled vectors before they are returned: keep the first
    ``dimensions`` (unit length again if ``renormalize``), quantize to ``precision`` against
    ``ranges`` (None for float32 and binary). Picklable: worker processes replay it."""

    renormalize: bool = False
    dimensions: int | None = None
    precision: Precision = "float32"
    ranges: np.ndarray | None = None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        vectors = truncate_dim(vectors, self.dimensions, renormalize=self.renormalize)
        return quantize_embeddings(vectors, self.precision, ranges=self.ranges)


def output_spec(
    *,
    dim: int,
    name: str,
    normalize: bool,
    dimensions: int | None,
    precision: str,
    calibration: OutputCalibration | None,
    ranges: np.ndarray | Sequence | None = None,
    calibration_embeddings: np.ndarray | Sequence | None = None,
    renormalize: bool | None = None,
) -> OutputSpec:
    """Check the output options and pick the int8 ranges: the caller's ``ranges`` or
    ``calibration_embeddings`` (full-size vectors; cut like the output), else the bake's."""
    check_precision(precision)
    if dimensions is not None:
        check_dimensions(dimensions, dim, name)
    kept = dimensions or dim
    renormalize = normalize if renormalize is None else renormalize
    chosen: np.ndarray | None = None
    if precision in CALIBRATED:
        if ranges is not None:
            chosen = np.asarray(ranges, dtype=np.float32)
            if chosen.ndim != 2 or chosen.shape[0] != 2 or chosen.shape[1] not in (dim, kept):
                raise ValueError(
                    f"ranges must have shape (2, {kept}) or (2, {dim}), got {tuple(chosen.shape)}"
                )
            chosen = chosen[:, :kept]
        elif calibration_embeddings is not None:
            table = np.asarray(calibration_embeddings, dtype=np.float32)
            if table.ndim != 2 or table.shape[1] != dim or len(table) == 0:
                raise ValueError(
                    f"calibration_embeddings must be [n, {dim}] vectors of {name}, got shape "
                    f"{tuple(table.shape)}"
                )
            table = truncate_dim(table, dimensions, renormalize=renormalize and normalize)
            chosen = np.vstack((table.min(axis=0), table.max(axis=0)))
        elif calibration is None:
            raise CalibrationMissingError(
                f"precision {precision}: {name}'s bake has no calibration ranges (baked by an "
                "older kettle); re-bake it, or pass ranges= or calibration_embeddings="
            )
        else:
            chosen = calibration.ranges(kept, normalize, renormalize and normalize)
    return OutputSpec(normalize and renormalize, dimensions, precision, chosen)  # type: ignore[arg-type]


__all__ = [
    "CalibrationMissingError",
    "InvalidDimensionsError",
    "OutputCalibration",
    "OutputSpec",
    "PRECISIONS",
    "Precision",
    "output_spec",
    "quantize_embeddings",
    "truncate_dim",
]
