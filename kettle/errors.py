"""Errors for bad input: each names the field and the item, so a caller (the HTTP handler, a CLI)
can answer with ``field[index]`` without parsing the message.

Messages read ``texts[3]: lone surrogate U+D800 at character 5`` and never hold an object's repr.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PureWindowsPath
from typing import Any


class KettleInputError(ValueError):
    """Bad input to a model: ``field`` ("texts", "images", "pairs", ...) and ``index`` (the item,
    or None when the whole argument is wrong)."""

    def __init__(self, message: str, *, field: str = "texts", index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index

    @property
    def where(self) -> str:
        """``field[index]``, or ``field`` when no item is at fault."""
        return self.field if self.index is None else f"{self.field}[{self.index}]"

    def __reduce__(self):  # keyword-only arguments: make the error picklable (worker processes)
        return _rebuild, (type(self), self.__dict__, self.args)


def _rebuild(cls: type, state: dict, args: tuple) -> KettleInputError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def _message(reason: str, field: str, index: int | None, where: str = "") -> str:
    """``texts[3]: lone surrogate ...`` or ``texts[3] is int, not str``; ``where`` replaces
    ``texts[3]`` when the place is finer than an item (``pairs[3][1] (document)``)."""
    where = where or (field if index is None else f"{field}[{index}]")
    predicate = reason.split(" ", 1)[0] in _PREDICATES  # "texts[1] is int", not "texts[1]: is"
    return f"{where}{' ' if predicate else ': '}{reason}"


_PREDICATES = frozenset({"is", "has", "preprocesses"})


class InvalidTextError(KettleInputError, TypeError):
    """An item that is not text: not a str (None included), or a str with a lone surrogate, which
    no tokenizer (and no UTF-8 encoder) accepts. ``reason`` says which."""

    def __init__(
        self, reason: str, *, field: str = "texts", index: int | None = None, where: str = ""
    ) -> None:
        super().__init__(_message(reason, field, index, where), field=field, index=index)
        self.reason = reason


class TextTooLongError(KettleInputError):
    """``truncate=False`` and a text has more tokens than the model reads (``limit``)."""

    def __init__(
        self, *, index: int, tokens: int, limit: int, field: str = "texts", model: str = ""
    ) -> None:
        by = f"{model} takes" if model else "the model takes"
        super().__init__(
            f"{field}[{index}] has {tokens} tokens; {by} at most {limit} (truncate=True cuts it)",
            field=field,
            index=index,
        )
        self.tokens = tokens
        self.limit = limit


class ImageInputError(KettleInputError):
    """An image that cannot be read or preprocessed; ``reason`` is plain words, never a repr."""

    def __init__(
        self, reason: str, *, field: str = "images", index: int | None = None, where: str = ""
    ) -> None:
        super().__init__(_message(reason, field, index, where), field=field, index=index)
        self.reason = reason


class ImageTypeError(ImageInputError, TypeError):
    """An image item of a type kettle cannot read (not a path, bytes or a PIL image)."""


class ModelNameError(KettleInputError):
    """A model name shaped as a path that leaves the models directory (absolute, a ``..`` or
    ``.`` or empty part, a backslash): it would load a bake kettle was not pointed at."""

    def __init__(self, name: Any, reason: str) -> None:
        super().__init__(
            f"model name {name!r} {reason}: a model name is a name ('org/model'), never a path "
            "(specific_model_path= loads the bake in a folder)",
            field="model_name",
        )


def check_model_name(name: Any) -> str:
    """``name`` when it is a name that stays inside any models directory; ModelNameError else."""
    if not isinstance(name, str):
        raise ModelNameError(name, f"is {type(name).__name__}, not str")
    if not name:
        raise ModelNameError(name, "is empty")
    if "\\" in name or "\x00" in name:
        raise ModelNameError(name, "has a backslash or a NUL character")
    if name.startswith("/") or PureWindowsPath(name).drive:
        raise ModelNameError(name, "is an absolute path")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise ModelNameError(name, f"has a {part!r} part" if part else "has an empty part")
    return name


def text_problem(item: Any) -> str | None:
    """Why ``item`` is not text a tokenizer takes, or None when it is."""
    if not isinstance(item, str):
        return f"is {type(item).__name__}, not str" + (": None is not text" if item is None else "")
    if item.isascii():
        return None
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as exc:  # only lone surrogates fail to encode
        return f"lone surrogate U+{ord(item[exc.start]):04X} at character {exc.start}"
    return None


EXPECTED_TEXTS = "expected a str or an iterable of str"


def text_items(texts: Any, field: str = "texts") -> Iterable[Any]:
    """``texts`` as items to embed: a str is one; any other iterable is its items, except bytes
    (iterating them gives ints) and a mapping (its keys would be embedded). InvalidTextError
    naming the argument otherwise; the items themselves are checked by ``check_texts``."""
    if isinstance(texts, str):
        return [texts]
    if texts is None:
        reason = f"is None: {EXPECTED_TEXTS}"
    elif isinstance(texts, bytes | bytearray | memoryview):
        reason = f"is {type(texts).__name__}: {EXPECTED_TEXTS} (decode bytes to str first)"
    elif isinstance(texts, Mapping):
        reason = f"is {type(texts).__name__}: {EXPECTED_TEXTS}, not a mapping"
    elif not isinstance(texts, Iterable):
        reason = f"is {type(texts).__name__}: {EXPECTED_TEXTS}"
    else:
        return texts
    raise InvalidTextError(reason, field=field)


def check_texts(items: Sequence[Any], offset: int = 0, field: str = "texts") -> None:
    """InvalidTextError naming the index of the first item that is not text."""
    for i, item in enumerate(items):
        reason = text_problem(item)
        if reason is not None:
            raise InvalidTextError(reason, field=field, index=offset + i)


__all__ = [
    "ImageInputError",
    "ImageTypeError",
    "InvalidTextError",
    "KettleInputError",
    "ModelNameError",
    "TextTooLongError",
    "check_model_name",
    "check_texts",
    "text_items",
    "text_problem",
]
