"""Powertools packages whose ``__init__`` imports every member, made lazy for the cold start.

``aws_lambda_powertools.event_handler``'s ``__init__`` imports every resolver (AppSync's pulls in
asyncio and ssl, ~0.1 s), and ``utilities.data_classes``' imports ~40 event classes; the API needs
two resolvers and two event classes. ``lazy()`` registers such a package without running its
``__init__``: a submodule imports as usual, and a name the ``__init__`` re-exports (``from
aws_lambda_powertools.event_handler import Response``) is imported from the submodule the
``__init__`` names for it, so it is the same object either way. Any other attribute (``__all__``,
a name not found) runs the real ``__init__`` first, so nothing is ever missing; only the order of
imports changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from importlib.machinery import PathFinder
from types import ModuleType
from typing import Any

# Registered by handler.api before its first Powertools event_handler import.
PACKAGES = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")


_FROM = re.compile(r"^from (\S+) import (?:\(([^)]*)\)|(.*))$", re.M)


def _exports(source: str, package: str) -> dict[str, str]:
    """name -> absolute module, from the package's own ``from .x import (A, B)`` lines (a regular
    expression: the ast module alone costs more than it saves)."""
    names: dict[str, str] = {}
    for module, grouped, single in _FROM.findall(source):
        imported = grouped or single
        base = f"{package}{module}" if module.startswith(".") else module
        if base.startswith(package + ".") and not module.startswith(".."):
            for name in re.split(r"[\s,]+", imported.strip()):
                if name:
                    names[name] = base
    return names


def lazy(name: str) -> ModuleType | None:
    """Register package ``name`` without running its ``__init__`` (see the module docstring).
    Nothing happens if it is imported already or cannot be found."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        exports = _exports(f.read(), name)
    module = importlib.util.module_from_spec(spec)
    loaded = False

    def load_all() -> None:
        nonlocal loaded
        if not loaded:
            loaded = True
            del module.__getattr__
            spec.loader.exec_module(module)

    def __getattr__(attr: str) -> Any:
        source = exports.get(attr)
        if source is not None and not attr.startswith("__"):
            value = getattr(importlib.import_module(source), attr)
            setattr(module, attr, value)
            return value
        if not attr.startswith("__") and PathFinder.find_spec(attr, module.__path__) is not None:
            return importlib.import_module(f"{name}.{attr}")  # a submodule: `from pkg import sub`
        load_all()
        return getattr(module, attr)  # AttributeError as usual if the package has no such name

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, module)
    return module


def register() -> None:
    for name in PACKAGES:
        lazy(name)
