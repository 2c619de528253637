"""The one ONNX model base every kind shares: find the bake, check its manifest, open the session.

FastEmbed's ``common/onnx_model.py`` has the same role. A kind (dense, sparse, rerank, image,
late interaction) sets its defaults as class attributes (``kind``, ``default_model``,
``token_budget``), adds its own options in ``_setup`` and supplies its last step; nothing else.

The constructor takes FastEmbed's parameters in FastEmbed's order, so a FastEmbed program runs
with its import changed. Where kettle differs it says so here: ``cache_dir`` is where *baked*
models are looked up (there is never a download at run time), and the session is opened on first
use unless ``lazy_load=False`` asks for it now.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from kettle.manifest import Manifest
from kettle.registry import DEFAULT_MODEL, UnknownModelError, get_model, list_supported_models
from kettle.store import BakedModel, bake_size_gb, find_model, load_bake

Provider = str | tuple[str, dict]

# FastEmbed keyword arguments that have no meaning for a baked model: accepted, without effect.
IGNORED_FASTEMBED_KWARGS = frozenset({"local_files_only", "mmap", "enable_cpu_mem_arena"})


def resolve_providers(
    providers: Sequence[Provider] | None,
    cuda: bool | str = False,
    device_ids: Sequence[int] | None = None,
) -> list[Provider] | None:
    """ONNX Runtime providers from FastEmbed's arguments: ``providers`` as given, else CUDA
    (device ``device_ids[0]``) when ``cuda`` is True or "cuda", else None (kettle's CPU default).

    FastEmbed's default ``cuda=Device.AUTO`` picks CUDA when it is there; kettle stays on the CPU
    unless asked, so a machine with onnxruntime-gpu gives the same vectors as one without.
    """
    wants_cuda = cuda is True or str(getattr(cuda, "value", cuda)).lower() == "cuda"
    if wants_cuda and providers is not None:
        raise ValueError("cuda and providers are mutually exclusive: pass one of them")
    if providers is not None:
        return list(providers)
    if wants_cuda:
        options = {"device_id": int(device_ids[0])} if device_ids else {}
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    return None


class OnnxModel:
    """A baked model and its ONNX Runtime session; not used directly.

    ``model_name`` (default: the class's ``default_model``; case does not matter), ``cache_dir``
    or ``models_dir`` (where bakes are looked up; else ``$KETTLE_MODELS_DIR``, ``/opt/models``,
    ``./models``), ``threads`` (default: the CPUs this process may really use), ``providers`` /
    ``cuda`` / ``device_ids`` (ONNX Runtime providers), ``lazy_load`` (False: open the session
    now; default: on first use), ``verify`` (check every file's sha256 against the manifest).
    FastEmbed's ``specific_model_path`` loads the bake in that folder.
    """

    kind: ClassVar[str] = ""
    default_model: ClassVar[str] = DEFAULT_MODEL

    def __init__(
        self,
        model_name: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: Sequence[Provider] | None = None,
        cuda: bool | str = False,
        device_ids: Sequence[int] | None = None,
        lazy_load: bool | None = None,
        *,
        models_dir: str | os.PathLike | None = None,
        verify: bool = True,
        **kwargs: Any,
    ) -> None:
        if cache_dir is not None and models_dir is not None and cache_dir != models_dir:
            raise ValueError("cache_dir and models_dir name the same folder: pass one of them")
        models_dir = models_dir if models_dir is not None else cache_dir
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        name = model_name or self.default_model
        specific = kwargs.pop("specific_model_path", None)
        for key in IGNORED_FASTEMBED_KWARGS & kwargs.keys():
            kwargs.pop(key)
        self._check_options(kwargs)
        kind = self.kind or None
        if specific is not None:
            self.baked: BakedModel = load_bake(specific, name, kind=kind, verify=verify)
        else:
            self.baked = find_model(name, models_dir, kind=kind, verify=verify)
        self.model_name = self.baked.manifest.name
        self.models_dir = models_dir
        self.threads = threads
        self.providers = resolve_providers(providers, cuda, device_ids)
        self.device_ids = list(device_ids) if device_ids else None
        self.lazy_load = lazy_load
        self._session = None
        self._input_names: list[str] = []
        self._output_name: str | None = self.manifest.onnx.get("output")
        self._options = dict(kwargs)  # replayed by worker processes (kettle.parallel)
        self._setup(**kwargs)
        if lazy_load is False:
            self.load()

    def _setup(self) -> None:
        """A kind's own options and files (tokenizer, preprocessor), after the bake is found."""

    def _check_options(self, kwargs: dict[str, Any]) -> None:
        """Unknown keyword arguments: a TypeError naming the class, not a private method."""
        try:
            inspect.signature(self._setup).bind(**kwargs)
        except TypeError:
            known = set(inspect.signature(self._setup).parameters) - {"kwargs"}
            unknown = ", ".join(sorted(set(kwargs) - known))
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword arguments: {unknown}"
            ) from None

    # ------------------------------------------------------------------ files and session
    @property
    def manifest(self) -> Manifest:
        return self.baked.manifest

    @property
    def session(self):
        """The ONNX Runtime session, created on first use."""
        if self._session is None:
            from kettle.session import create_session

            session = create_session(self.baked.model_path, self.threads, self.providers)
            self._input_names = [i.name for i in session.get_inputs()]
            if self._output_name is None:
                self._output_name = session.get_outputs()[0].name
            self._session = session
        return self._session

    def load(self) -> None:
        """Create the session now (for an init phase or a snapshot) rather than on first use."""
        _ = self.session

    def run_session(self, feeds: dict[str, Any]) -> Any:
        """The model's output for ``feeds`` (only the inputs the graph declares are sent)."""
        session = self.session
        (output,) = session.run(
            [self._output_name], {n: feeds[n] for n in self._input_names if n in feeds}
        )
        return output

    # ------------------------------------------------------------------ listing
    @classmethod
    def list_supported_models(
        cls, models_dir: str | os.PathLike | None = None
    ) -> list[dict[str, Any]]:
        """The registry's models of this class's kind, with FastEmbed's keys; ``baked`` says
        whether a bake is found (in ``models_dir`` or the usual places), and a baked model's
        ``size_in_GB`` is its bake's."""
        rows = list_supported_models(cls.kind or None)
        for row in rows:
            try:
                baked = find_model(row["model"], models_dir, verify=False)
            except (LookupError, ValueError):
                row["baked"] = False
                continue
            row["baked"] = True
            row["size_in_GB"] = round(bake_size_gb(baked), 4)
        return rows

    @classmethod
    def get_embedding_size(cls, model_name: str) -> int:
        """The vector size of ``model_name`` from the registry (FastEmbed's classmethod; no bake
        needed). A model outside the registry: construct it and read ``embedding_size``."""
        try:
            description = get_model(model_name)
        except UnknownModelError:  # baked from a folder of its own: its manifest knows
            return find_model(model_name, kind=cls.kind or None, verify=False).manifest.dim
        if cls.kind and description.kind != cls.kind:
            raise ValueError(f"{description.name} is a {description.kind} model, not {cls.kind}")
        return description.dim

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild the session themselves; an ONNX session does not pickle.
        state = self.__dict__.copy()
        state["_session"] = None
        return state


__all__ = ["IGNORED_FASTEMBED_KWARGS", "OnnxModel", "Provider", "resolve_providers"]
