"""The models a Lambda instance serves: loaded on first use, kept for warm invocations.

Which model serves which kind comes from the environment (KETTLE_MODEL, KETTLE_SPARSE_MODEL,
KETTLE_RERANK_MODEL, KETTLE_IMAGE_MODEL, KETTLE_LATE_INTERACTION_MODEL); a request may name another
model of the same kind if it is baked. Every kind but dense is optional: unconfigured, it answers
501 naming its variable. kettle is
imported inside the loader, so importing this module costs no model and no session (handler.app's
init loads the dense model: handler.preload, ModelCache.start).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from handler.settings import KINDS, Settings, model_variable

MEMORY_PER_VCPU_MB = 1769  # Lambda: one vCPU's worth of CPU time per 1,769 MB of memory

# kind -> the kettle class that serves it (kettle's public names; kinds: handler.settings.KINDS)
CLASSES: dict[str, str] = {
    "dense": "TextEmbedding",
    "sparse": "SparseTextEmbedding",
    "rerank": "TextCrossEncoder",
    "image": "ImageEmbedding",
    "late_interaction": "LateInteractionTextEmbedding",
}
assert tuple(CLASSES) == KINDS


class ModelNotConfiguredError(LookupError):
    """No model of this kind is configured, or this kettle cannot serve the kind (HTTP 501)."""

    code = "model_not_configured"


class ModelUnavailableError(LookupError):
    """The model asked for is not baked here; ``baked`` lists what is (HTTP 404)."""

    code = "model_not_found"

    def __init__(self, message: str, name: str, baked: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.baked = baked


class ModelFilesError(RuntimeError):
    """The model's files do not match its manifest (corrupted or partly copied): HTTP 503."""

    code = "model_files_mismatch"

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def kettle_class(kind: str) -> type:
    """kettle's class for ``kind``, imported on first use (only the kinds a deployment serves)."""
    name = CLASSES[kind]
    import kettle  # lazy (PEP 562): only the class asked for is imported

    try:
        return getattr(kettle, name)
    except AttributeError:
        raise ModelNotConfiguredError(f"this kettle cannot serve {kind} models") from None


def threads_for(settings: Settings, cpus: int | None = None) -> int:
    """ONNX Runtime threads: $KETTLE_THREADS, else one per ~1,769 MB of the function's memory
    (at least 1, at most the CPUs this process may use), else every CPU."""
    if cpus is None:
        from kettle import available_cpus

        cpus = available_cpus()
    if settings.threads:
        return settings.threads
    if settings.memory_mb:
        return max(1, min(cpus, round(settings.memory_mb / MEMORY_PER_VCPU_MB)))
    return cpus


@dataclass(frozen=True)
class LoadedModel:
    kind: str
    name: str
    model: Any
    seconds: float


class ModelCache:
    """Models by (kind, name), created once per process and shared by every invocation."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()
        self._building: dict[tuple[str, str], threading.Thread] = {}
        self.loads: Counter[tuple[str, str]] = Counter()

    def configured(self, kind: str, settings: Settings) -> str:
        """The model name configured for ``kind``; ModelNotConfiguredError when none is."""
        name = settings.models[kind]
        if not name:
            what = kind.replace("_", "-")
            raise ModelNotConfiguredError(
                f"no {what} model is configured: set ${model_variable(kind)} to a baked {what} model"
            )
        return name

    def get(self, kind: str, settings: Settings, name: str | None = None) -> Any:
        """The ``kind`` model called ``name`` (default: the configured one), loading it once
        (or waiting for the load ``start`` began). A ``name`` from a request (a batch's
        BatchInput.model) must be one of the baked ``kind`` models, never a path:
        ModelUnavailableError listing them otherwise."""
        explicit = name is not None and name != settings.models.get(kind)
        name = name or self.configured(kind, settings)
        key = (kind, name)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded.model
        if explicit:
            baked = baked_models(settings, kind)
            if name not in baked:
                raise ModelUnavailableError(
                    f"model {name!r} is not baked here; baked {kind} models: "
                    f"{', '.join(baked) or 'none'}",
                    name,
                    baked,
                )
        with self._lock:  # a start() in progress registers its thread before it lets go
            building = self._building.get(key)
        if building is not None:
            building.join()
        with self._lock:
            self._building.pop(key, None)
            if key not in self._models:  # not started, or the background half failed: load here
                self._models[key] = self._load(kind, name, settings)
            return self._models[key].model

    def start(self, kind: str, settings: Settings) -> None:
        """Begin loading the configured ``kind`` model for an init: its kettle class is imported
        here, and a background thread finds the bake, checks its files, reads the tokenizer and
        builds the ONNX Runtime session. Hashing and the session build run with the GIL
        released, beside whatever Python the caller runs next. ``get`` and ``wait`` wait for it.
        Nothing is raised: a model that cannot load is left to ``get``, which loads again and
        raises the error as it would have."""
        try:
            name = self.configured(kind, settings)
            key = (kind, name)
            with self._lock:
                if key in self._models or key in self._building:
                    return
                kettle_class(kind)  # kettle's imports on this thread: the other imports only ORT
                thread = threading.Thread(
                    target=self._load_in_background,
                    args=(key, settings),
                    name=f"kettle-load-{kind}",
                    daemon=True,
                )
                self._building[key] = thread
                thread.start()
        except Exception:  # get() loads again and raises it
            return

    def wait(self) -> None:
        """Until every load ``start`` began has ended (loaded, or left to ``get``)."""
        for thread in list(self._building.values()):
            thread.join()

    def _load_in_background(self, key: tuple[str, str], settings: Settings) -> None:
        try:
            loaded = self._load(*key, settings)
        except Exception:  # get() finds no model, loads again and raises it
            return
        with self._lock:
            self._models[key] = loaded

    def loaded(self) -> list[dict[str, Any]]:
        """What this process holds: kind, name, load seconds and load count of each model."""
        return [
            {
                "kind": m.kind,
                "name": m.name,
                "load_seconds": round(m.seconds, 3),
                "loads": self.loads[k],
            }
            for k, m in self._models.items()
        ]

    def clear(self) -> None:
        """Forget every model (a test that points KETTLE_MODELS_DIR elsewhere)."""
        self.wait()
        with self._lock:
            self._models.clear()
            self._building.clear()
            self.loads.clear()

    def is_loaded(self, name: str) -> bool:
        return any(n == name for _, n in self._models)

    def _load(self, kind: str, name: str, settings: Settings) -> LoadedModel:
        cls = kettle_class(kind)
        from kettle import ManifestError, ModelNotBakedError, find_model, list_baked

        started = time.perf_counter()
        threads = threads_for(settings)
        try:
            # The kind check reads the manifest only; the class's own find_model then checks every
            # file against the manifest's sha256 (verify on: a corrupted file is refused here).
            found = find_model(name, settings.models_dir, verify=False).manifest.kind
            if found != kind:
                raise ModelNotBakedError(f"{name} is a {found} model, not a {kind} model")
            model = cls(name, models_dir=settings.models_dir, threads=threads)
            model.load()
        except ImportError as exc:  # e.g. image models without Pillow in the runtime
            raise ModelNotConfiguredError(
                f"this kettle cannot serve {kind} models: {exc}"
            ) from None
        except ModelNotBakedError as exc:
            baked = list_baked(settings.models_dir)
            message = str(exc) if "baked:" in str(exc) else f"{exc}; baked: {', '.join(baked)}"
            raise ModelUnavailableError(message, name, baked) from None
        except ManifestError as exc:
            raise ModelFilesError(f"{name} cannot be served: {exc}", name) from None
        seconds = time.perf_counter() - started
        self.loads[(kind, name)] += 1
        # Imported here: init's load starts before Powertools is imported (handler.preload).
        from handler.observability import logger

        logger.info(
            "model loaded",
            extra={
                "model": name,
                "kind": kind,
                "load_seconds": round(seconds, 3),
                "threads": threads,
            },
        )
        return LoadedModel(kind, name, model, seconds)


def resolve_name(requested: str, kind: str, settings: Settings) -> str:
    """The baked ``kind`` model a request means by ``requested``: its full name, or the part after
    the organisation ("all-MiniLM-L6-v2") when that is unambiguous, in any case (as kettle's own
    lookups are). ModelUnavailableError lists
    the baked models of that kind otherwise."""
    baked = baked_models(settings, kind)
    if requested in baked:
        return requested
    folded = requested.lower()  # names are case-insensitive, as in the library
    for names in (
        [n for n in baked if n.lower() == folded],
        [n for n in baked if n.rsplit("/", 1)[-1].lower() == folded],
    ):
        if len(names) == 1:
            return names[0]
    raise ModelUnavailableError(
        f"model {requested!r} is not baked here; baked {kind} models: {', '.join(baked) or 'none'}",
        requested,
        baked,
    )


def baked_models(settings: Settings, kind: str | None = None) -> list[str]:
    """Names of the models baked in the models directory, optionally of one kind."""
    return [d["name"] for d in describe_baked(settings) if kind is None or d["kind"] == kind]


def describe_baked(settings: Settings) -> list[dict[str, Any]]:
    """The baked models' manifests in brief (no file hashing: cheap enough for every request)."""
    from kettle import find_model, list_baked

    described = []
    for name in list_baked(settings.models_dir):
        try:
            found = find_model(name, settings.models_dir, verify=False)
        except (LookupError, ValueError):
            continue
        manifest = found.manifest
        described.append(
            {
                "name": manifest.name,
                "created": _baked_at(found.path),
                "kind": manifest.kind,
                "dim": manifest.dim,
                "max_length": manifest.max_length,
                "fingerprint": manifest.fingerprint,
                "quantization": (manifest.quantization or {}).get("weight_type", "none"),
            }
        )
    return described


def _baked_at(path: Any) -> int:
    """When the model was baked (its manifest's modification time, Unix seconds; 0 if unknown)."""
    try:
        return int((path / "manifest.json").stat().st_mtime)
    except OSError:
        return 0


MODELS = ModelCache()


def model_summary(model: Any, with_dim: bool = True) -> dict[str, Any]:
    """What a loaded model is, as the sinks record it beside its rows: name, kind, fingerprint
    (and dim)."""
    m = model.manifest
    summary = {"name": m.name, "kind": m.kind, "fingerprint": m.fingerprint}
    return {**summary, "dim": m.dim} if with_dim else summary


_VERIFIED: dict[tuple, str | None] = {}


def files_problem(name: str, settings: Settings) -> str | None:
    """Why ``name``'s baked files cannot be served (missing, or a sha256 that does not match its
    manifest), or None when they match. Hashing costs tens of milliseconds per model, so the answer
    is kept until a file's size or modification time changes (what /health asks every call)."""
    from kettle import ManifestError, ModelNotBakedError, find_model

    try:
        baked = find_model(name, settings.models_dir, verify=False)
    except (ModelNotBakedError, ManifestError, ValueError) as exc:
        return str(exc)
    signature = [str(baked.path)]
    for rel in sorted(baked.manifest.files):
        try:
            stat = (baked.path / rel).stat()
            signature.append((rel, stat.st_size, stat.st_mtime_ns))
        except OSError:
            signature.append((rel, None, None))
    key = tuple(signature)
    if key not in _VERIFIED:
        try:
            baked.manifest.verify(baked.path)
            _VERIFIED[key] = None
        except ManifestError as exc:
            _VERIFIED[key] = str(exc)
    return _VERIFIED[key]
