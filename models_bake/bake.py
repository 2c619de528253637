"""One bake: fetch -> convert (or take the ONNX file) -> fuse -> int8 -> fidelity gate -> manifest.

All work happens in a staging folder beside the output; the finished model directory replaces the
old one with a rename, so a failed or refused bake leaves nothing half-written. A bake whose inputs
(source version, files, settings) are unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kettle import __version__ as kettle_version
from kettle.manifest import MANIFEST_NAME, Manifest, ManifestError, sha256_file
from kettle.model_folder import onnx_export
from kettle.registry import ModelDescription, Source, get_model
from models_bake import quantize as q
from models_bake import rewrites, verify
from models_bake.eval_gate import KINDS as EVAL_KINDS
from models_bake.eval_gate import fingerprint as eval_set_fingerprint
from models_bake.sources import FetchedSource, SourceError, fetch

log = logging.getLogger("models_bake")

BAKE_FORMAT = 5  # bump when the bake's output changes for the same inputs
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SIDE_FILES = ("config.json", "preprocessor_config.json")


class BakeError(RuntimeError):
    """A bake that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BakeResult:
    path: Path
    manifest: Manifest
    skipped: bool
    seconds: float


def _fetch_first(description: ModelDescription, sources: tuple[Source, ...], cache: Path):
    errors = []
    for source in sources:
        log.info("fetch: %s %s", source.type, source.ref)
        try:
            return fetch(source, cache)
        except SourceError as exc:
            errors.append(str(exc))
            log.info("source %s:%s unavailable: %s", source.type, source.ref, exc)
    raise BakeError(f"no source of {description.name} could be fetched:\n  " + "\n  ".join(errors))


def _bake_key(fetched: FetchedSource, description: ModelDescription, settings: dict) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [BAKE_FORMAT, kettle_version, fetched.describe(), settings], sort_keys=True, default=str
        ).encode()
    )
    digest.update(repr(description).encode())
    for name in sorted(os.listdir(fetched.path)):
        path = fetched.path / name
        if path.is_file():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}".encode())
            if stat.st_size < (1 << 20):
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _up_to_date(final: Path, key: str) -> Manifest | None:
    try:
        manifest = Manifest.read(final)
        if manifest.extra.get("bake_key") != key:
            return None
        manifest.verify(final)
        return manifest
    except ManifestError:
        return None


def _onnx_io(model_path: Path) -> dict:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    # Pooled outputs first: a CLIP tower's text_embeds / image_embeds is the shared space.
    # A sparse int8 graph pools its own logits: max_logits (rewrites.pooled_sparse_head).
    preferred = (
        "text_embeds",
        "image_embeds",
        "last_hidden_state",
        "token_embeddings",
        rewrites.SPARSE_POOLED_OUTPUT,
        "logits",
    )
    output = next((o for o in preferred if o in outputs), outputs[0])
    return {"inputs": inputs, "output": output, "outputs": outputs}


def _write_model_dir(
    directory: Path,
    model_file: Path,
    fetched: FetchedSource,
    description: ModelDescription,
    onnx_io: dict,
    quantization: dict | None,
    extra: dict,
) -> Manifest:
    directory.mkdir(parents=True, exist_ok=True)
    from models_bake.convert.common import copy_onnx

    copy_onnx(model_file, directory / "model.onnx")  # with model.onnx.data past 2 GB
    for name in TOKENIZER_FILES + SIDE_FILES:
        if (fetched.path / name).is_file():
            shutil.copyfile(fetched.path / name, directory / name)
    if description.kind != "image" and not (directory / "tokenizer.json").is_file():
        raise BakeError(f"{fetched.path}: no tokenizer.json; kettle needs a fast tokenizer file")
    if description.kind == "image" and not (directory / "preprocessor_config.json").is_file():
        raise BakeError(f"{fetched.path}: no preprocessor_config.json; an image model needs it")
    files = {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }
    manifest = Manifest(
        name=description.name,
        kind=description.kind,
        dim=description.dim,
        pooling=description.pooling,
        normalize=description.normalize,
        max_length=description.max_length,
        source=fetched.describe(),
        files=files,
        query_prefix=description.query_prefix,
        passage_prefix=description.passage_prefix,
        prompts=dict(description.prompts),
        quantization=quantization,
        onnx=onnx_io,
        extra=extra,
        kettle_version=kettle_version,
    )
    manifest.write(directory)
    return manifest


def _fp32_graph(
    description: ModelDescription, fetched: FetchedSource, work: Path
) -> tuple[Path, dict]:
    """The full-precision ONNX graph: the source's own file (named by the source, or the ONNX
    export of a local folder without safetensors), or converted from safetensors."""
    onnx_file = fetched.source.onnx_file
    if onnx_file is None and fetched.source.type == "local":
        onnx_file = onnx_export(fetched.path)
    if onnx_file:
        path = fetched.path / onnx_file
        if not path.is_file():
            raise BakeError(f"{fetched.source.ref}: no {onnx_file}")
        log.info("convert: none, the source's %s", onnx_file)
        return path, {}
    if description.architecture == "onnx":
        raise BakeError(f"{description.name}: its source has no ONNX file")
    from models_bake.convert import UnsupportedArchitectureError, convert_checkpoint

    out = work / "converted.onnx"
    log.info("convert: %s -> ONNX", fetched.path)
    try:  # the family comes from config.json; late_interaction adds ColBERT's projection
        info = convert_checkpoint(fetched.path, out, description.kind)
    except UnsupportedArchitectureError as exc:
        raise BakeError(f"{description.name}: {exc}") from None
    except FileNotFoundError as exc:  # config.json or the weights
        raise BakeError(
            f"{description.name}: {exc}; --source must be a folder with config.json and "
            "model.safetensors (or model.safetensors.index.json and its shards)"
        ) from None
    return out, info


def _fuse(
    description: ModelDescription,
    fetched: FetchedSource,
    src: Path,
    work: Path,
    multi_head_attention: bool = False,
) -> tuple[Path, dict]:
    config_path = fetched.path / "config.json"
    if description.kind == "image" or not config_path.is_file():
        return src, {}
    from models_bake.convert import FUSED_FAMILIES

    config = json.loads(config_path.read_text())
    if config.get("model_type") not in FUSED_FAMILIES:
        return src, {}
    out = work / ("fused-mha.onnx" if multi_head_attention else "fused.onnx")
    # Every converted family keeps the export layout ORT's BERT optimizer matches; what fuses
    # differs (rotary attention stays unfused), so the counts go into the manifest.
    heads = config.get("num_attention_heads", config.get("n_head"))
    hidden = config.get("hidden_size", config.get("n_embd"))
    bert_embeddings = config["model_type"] == "bert"
    way = "MultiHeadAttention" if multi_head_attention else "Attention"
    log.info("fuse: ONNX Runtime's transformer fusion (attention as %s)", way)
    stats = q.fuse_transformer(
        src, out, heads, hidden, multi_head_attention, embed_layer_norm=bert_embeddings
    )
    log.debug("fused: %s", stats)
    return out, stats


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove what killed bakes left in ``out/.staging`` (folders named ``...-<pid>`` whose
    process is gone; a running bake's folder stays). Returns the removed folders."""
    removed = []
    for folder in sorted((Path(out) / ".staging").glob("*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    try:
        (Path(out) / ".staging").rmdir()
    except OSError:
        pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def bake(
    name: str,
    out: Path = Path("models"),
    quantize: str = "int8",
    min_cosine: float = 0.99,
    cache: Path = Path(".cache"),
    source: Source | None = None,
    scheme: q.QuantScheme | None = None,
    force: bool = False,
    description: ModelDescription | None = None,
    gates: dict | None = None,
    eval_data: Path | None = None,
) -> BakeResult:
    """Bake ``name`` into ``out/<name>/``. Raises BakeError or verify.FidelityError.

    ``quantize`` is "none", "auto" or a scheme name of models_bake.quantize.SCHEMES ("int8",
    "int8-dynamic", "int8-blockwise"); ``scheme`` overrides the named scheme's settings. "auto"
    tries quantize.AUTO_ORDER (fastest first) and keeps the first scheme that passes the gate,
    else bakes fp32 and logs why; the manifest records the search. ``gates`` overrides
    verify.GATES (``min_cosine`` gates the mean cosine). ``description`` bakes a model that is
    not in the registry (models_bake.describe builds one from the model's files).
    ``eval_data``: a BEIR folder of the user's that the gate measures on instead of kettle's set
    (models_bake.eval_gate); the manifest's ``fidelity.eval_set`` names it.
    """
    if quantize not in ("none", "auto") and quantize not in q.SCHEMES:
        choices = ", ".join(["none", "auto", *q.SCHEMES])
        raise BakeError(f"--quantize must be one of {choices}, not {quantize!r}")
    if scheme is None:
        scheme = q.SCHEMES.get(quantize, q.DEFAULT_SCHEME)
    started = time.perf_counter()
    description = description or get_model(name)
    out, cache = Path(out).resolve(), Path(cache).resolve()
    final = out / description.dir_name
    if eval_data is not None and description.kind not in EVAL_KINDS:
        raise BakeError(
            f"--eval gates dense and sparse models; {description.name} is a {description.kind} model"
        )
    fetched = _fetch_first(description, (source,) if source else description.sources, cache)
    settings = {
        "quantize": quantize,
        "min_cosine": min_cosine,
        "scheme": scheme.describe(),
        "gates": verify.GATES | dict(gates or {}),
    }
    if description.kind == "dense":  # a dense bake records its int8 output ranges (calibrate.py)
        settings["output_calibration"] = 1
    if eval_data is not None:
        settings["eval_set"] = eval_set_fingerprint(eval_data)
    key = _bake_key(fetched, description, settings)
    if not force and (manifest := _up_to_date(final, key)):
        log.info("%s is up to date in %s", name, final)
        return BakeResult(final, manifest, True, time.perf_counter() - started)

    remove_stale_staging(out)
    staging = out / ".staging" / f"{description.dir_name.replace('/', '--')}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        fp32, info = _fp32_graph(description, fetched, staging)
        extra = dict(description.extra, bake_key=key)
        if info:
            extra["converter"] = info
        fusions: dict[bool, tuple[Path, dict]] = {}

        def fused_graph(multi_head_attention: bool = False) -> tuple[Path, dict]:
            """The fp32 graph fused one way, once per bake (the mixed search asks ~20 times)."""
            if multi_head_attention not in fusions:
                fusions[multi_head_attention] = _fuse(
                    description, fetched, fp32, staging, multi_head_attention
                )
            return fusions[multi_head_attention]

        # The fp32 reference (and the fp32 bake): Attention fused as one op, the fastest fp32 graph.
        fused, stats = fused_graph()
        onnx_io = _onnx_io(fused)
        ref_root = staging / "fp32"
        _write_model_dir(
            ref_root / description.dir_name, fused, fetched, description, onnx_io, None, extra
        )
        built_root = ref_root
        if quantize == "none":
            candidates: list[tuple[str, q.QuantScheme]] = []
        elif quantize == "auto":
            candidates = [(label, q.SCHEMES.get(label, q.DEFAULT_SCHEME)) for label in q.AUTO_ORDER]
        else:
            candidates = [(quantize, scheme)]
        search: list[dict] = []
        failures: list[str] = []
        calibrations: dict = {}

        def ranges_for(candidate: q.QuantScheme, src: Path) -> dict | None:
            """The fp32 graph's activation ranges on the calibration texts, measured once per
            graph (the per-row scheme's smoothing needs them; other schemes None)."""
            if (
                candidate.method != "rowwise"
                or candidate.smooth_alpha <= 0
                or description.kind == "image"
            ):
                return None
            if src not in calibrations:
                texts = verify.calibration_texts()
                log.info("calibrate: activation ranges of the fp32 graph on %d texts", len(texts))
                batches = calibration_batches(ref_root / description.dir_name, description, texts)
                calibrations[src] = rewrites.activation_ranges(src, batches)
            return calibrations[src]

        def attempt(
            label: str, candidate: q.QuantScheme, note: dict | None = None, record: bool = True
        ) -> tuple[list[str], Path, dict]:
            """Quantize with ``candidate`` into staging/<label>/ and measure it against fp32:
            (gate failures, model folder, figures); the search records it (with ``note``)
            unless ``record`` is false."""
            src, cand_stats = fp32, {}
            if candidate.fused:
                src, cand_stats = fused_graph(candidate.multi_head_attention)
            int8 = staging / f"{label}.onnx"
            ranges = ranges_for(candidate, src)
            kept = f", {len(candidate.keep_fp32)} MatMuls kept fp32" if candidate.keep_fp32 else ""
            log.info("quantize: %s (%s%s)", label, candidate.method, kept)
            q.quantize_int8(src, int8, candidate, description.kind, ranges)
            quantization = candidate.describe() | {
                "scheme": label,
                "fusion": cand_stats,
                "cpu": cpu_info(),
            }
            root = staging / label
            shutil.rmtree(root, ignore_errors=True)
            target = root / description.dir_name
            io = _onnx_io(int8)  # a sparse head pooled in the graph has its own output
            _write_model_dir(target, int8, fetched, description, io, quantization, extra)
            log.info("verify: %s against fp32", label)
            figures = verify.measure(description.kind, name, ref_root, root, eval_data)
            failed = verify.gate_failures(figures, min_cosine, gates)
            log.info(
                "verify: %s %s: %s",
                label,
                "fails" if failed else "passes",
                ", ".join(f"{k} {figures[k]}" for k in verify.SUMMARY if k in figures),
            )
            if record:
                entry = {"scheme": label, "passed": not failed, "failed": failed}
                if candidate.keep_fp32:
                    entry["keep_fp32"] = list(candidate.keep_fp32)
                search.append(entry | dict(note or {}) | figures)
            return failed, root, figures

        for label, candidate in candidates:
            if label == q.MIXED:
                # the weights' names as the default scheme's graph has them
                graph = fused_graph(candidate.multi_head_attention)[0] if candidate.fused else fp32
                weights = rewrites.rowwise_weights(graph)
                if not weights:
                    failures.append(f"{label}: no MatMul to keep in fp32")
                    continue
                int8_graph = staging / "int8.onnx"
                int8_figures = next((e for e in search if e["scheme"] == "int8"), None)
                if description.kind == "image":  # the ranking pass reads texts
                    failures.append(f"{label}: not for image models")
                    continue
                if int8_figures is None or not int8_graph.is_file():
                    failures.append(
                        f"{label}: needs int8's graph and figures (auto tries it first)"
                    )
                    continue
                texts = verify.calibration_texts()[: q.RANK_TEXTS]
                batches = calibration_batches(
                    ref_root / description.dir_name, description, texts, batch_size=4
                )
                limits = {"mean_cosine": min_cosine} | verify.GATES | dict(gates or {})
                failed, root, figures = mixed_precision_search(
                    attempt, graph, int8_graph, int8_figures, batches, limits
                )
            else:
                failed, root, figures = attempt(label, candidate)
            if failed and quantize != "auto":
                verify.gate(figures, min_cosine, gates)
            if failed:
                failures.append(f"{label}: {'; '.join(failed)}")
                shutil.rmtree(root, ignore_errors=True)
                continue
            target = root / description.dir_name
            manifest = Manifest.read(target)
            quantization = dict(manifest.quantization or {})
            gate_record = {"min_cosine_gate": min_cosine, "gates": verify.GATES | dict(gates or {})}
            if quantize == "auto":
                quantization = quantization | {"auto_search": search}
            manifest = replace(manifest, quantization=quantization, fidelity=figures | gate_record)
            manifest.write(target)
            built_root = root
            break
        if quantize == "auto" and built_root is ref_root:
            log.warning(
                "%s: no int8 scheme passes the gate, baking fp32: %s", name, " | ".join(failures)
            )
        if built_root is ref_root and stats:
            manifest = Manifest.read(ref_root / description.dir_name)
            record = {"fused": True, "fusion": stats, "weight_type": "float32"}
            if quantize == "auto":
                record["auto_search"] = search
            manifest = replace(manifest, quantization=record)
            manifest.write(ref_root / description.dir_name)
        if description.kind == "dense":  # int8/uint8 output ranges, measured once per bake
            from models_bake.calibrate import output_calibration

            built = built_root / description.dir_name
            manifest = Manifest.read(built)
            replace(manifest, calibration=output_calibration(built)).write(built)
        _install(built_root / description.dir_name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            (out / ".staging").rmdir()
        except OSError:
            pass
    return BakeResult(final, Manifest.read(final), False, time.perf_counter() - started)


def mixed_precision_search(
    attempt, fp32_graph: Path, int8_graph: Path, int8_figures: dict, batches, limits: dict
) -> tuple[list[str], Path, dict]:
    """int8 with the MatMuls that hurt fidelity most kept in fp32 (--quantize auto, after int8
    missed the gate ``limits``).

    One pass ranks them (rewrites.matmul_errors: each MatMul's int8 output beside its input
    times the fp32 weights, on calibration texts), then the fewest worst to keep is predicted:
    each MatMul's share of the squared errors is taken as its share of int8's shortfall
    (``int8_figures``), and the smallest n whose remaining share brings every missed figure to
    ``PREDICT_MARGIN`` of its allowed distance from 1 is tried with the full gate. If that misses
    n doubles, up to ``quantize.MIXED_MAX_TRIES`` full measurements. The old search measured
    every MatMul quantized alone with the full gate: ~25 minutes on a 12-layer base model.
    ``attempt(label, scheme, note, record)`` quantizes and measures (bake's); returns the last
    attempt's (gate failures, folder, figures).
    """
    import numpy as np

    log.info("rank: each MatMul's int8 error in one pass over the calibration texts")
    errors = rewrites.matmul_errors(fp32_graph, int8_graph, batches)
    if not errors:
        return ["no MatMul to keep in fp32"], int8_graph.parent / q.MIXED, int8_figures
    energy = np.array([e["error"] for e in errors]) ** 2
    remaining = 1 - np.cumsum(energy) / max(float(energy.sum()), 1e-30)  # after keeping 1, 2, ...
    allowed = [
        (1 - limit) / (1 - int8_figures[key])
        for key, limit in limits.items()
        if key in int8_figures and int8_figures[key] < limit < 1
    ]
    target = PREDICT_MARGIN * min(allowed, default=1.0)
    n = int(np.argmax(remaining <= target)) + 1 if (remaining <= target).any() else len(errors)
    for tries in range(1, q.MIXED_MAX_TRIES + 1):
        keep = tuple(e["weight"] for e in errors[:n])
        log.info(
            "probe %d of %d: int8 with the %d worst of %d MatMuls in fp32",
            tries,
            q.MIXED_MAX_TRIES,
            n,
            len(errors),
        )
        note = {
            "sensitivity": errors[:20],
            "predicted_share_left": round(float(remaining[n - 1]), 4),
        }
        result = attempt(q.MIXED, replace(q.DEFAULT_SCHEME, keep_fp32=keep), note)
        if not result[0] or n >= len(errors):
            break
        n = min(len(errors), 2 * n)
    return result


# The predicted n must bring each missed figure within this share of its allowed distance.
PREDICT_MARGIN = 0.7


def calibration_batches(
    model_dir: Path, description: ModelDescription, texts: list[str], batch_size: int = 8
):
    """Padded feeds of ``texts``, ``batch_size`` at a time, as kettle's runtime builds them (the
    model's tokenizer and max_length); a cross-encoder reads them as single texts, which exercise
    the same activations. Small batches: a calibration pass holds every quantized activation of
    a batch at once (48 tensors of a 12-layer model; the MPNet bake peaked at 9.8 GB RSS with
    32 texts a batch)."""
    from kettle.tokenize import TextTokenizer

    tokenizer = TextTokenizer(model_dir, description.max_length)
    # by length, as kettle batches: padding would be most of a batch's tokens
    encodings = sorted(tokenizer.encode(texts), key=lambda e: len(e.ids))
    for i in range(0, len(encodings), batch_size):
        yield tokenizer.pad(encodings[i : i + batch_size])


def cpu_info() -> dict:
    """The CPU the gate ran on: int8 kernels (and so int8 fidelity) differ by instruction set."""
    import platform

    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name.strip():
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve")
    return {
        "name": name,
        "machine": platform.machine(),
        "int8_flags": [f for f in wanted if f in flags],
    }


def _install(built: Path, final: Path) -> None:
    """Put ``built`` at ``final`` by renames, replacing an older bake."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(final.name + f".old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    built.rename(final)
    shutil.rmtree(old, ignore_errors=True)
