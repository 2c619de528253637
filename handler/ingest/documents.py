"""An object's body as documents: (document id, text) pairs by extension.

.txt and .md are one document each (the whole text, UTF-8); .jsonl is one {"id", "text"} object
per line; .json is an array of strings or of {"id", "text"} objects (or one such object).
JSON that decodes to no text (a lone surrogate escape such as "\ud800") or nests deeper than the
decoder's recursion limit is a ``bad_document`` naming the line or item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from handler.ingest.errors import IngestError

TEXT_TYPES = (".txt", ".md")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON may escape one alone; UTF-8 cannot hold it
SUPPORTED = (*TEXT_TYPES, ".jsonl", ".json")


def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            "undecodable", f"{where} is not UTF-8 text (bad byte at offset {exc.start})"
        ) from None


def documents(body: Any, key: str) -> Iterator[tuple[str, str]]:
    """(document id, text) pairs of an object body (a file-like with read() / iter_lines())."""
    kind = extension(key)
    if kind in TEXT_TYPES:
        yield key, _utf8(body.read(), key)
    elif kind == ".jsonl":
        lines = body.iter_lines() if hasattr(body, "iter_lines") else iter(body.read().splitlines())
        for number, raw in enumerate(lines, start=1):
            line = _utf8(raw, f"line {number}").strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise IngestError(
                    "bad_document", f"line {number} is not valid JSON ({exc})"
                ) from None
            except RecursionError:
                raise IngestError(
                    "bad_document", f"line {number} is JSON nested too deeply to be a document"
                ) from None
            yield _document(item, f"line {number}", str(number))
    elif kind == ".json":
        text = _utf8(body.read(), key)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise IngestError("bad_document", f"{key} is not valid JSON ({exc})") from None
        except RecursionError:
            raise IngestError(
                "bad_document", f"{key} is JSON nested too deeply to be documents"
            ) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise IngestError(
                "bad_document",
                f"{key}: a .json object must be an array of strings or of {{id, text}} objects",
            )
        for index, item in enumerate(data):
            yield _document(item, f"item {index}", str(index))
    else:
        raise IngestError(
            "unsupported_type",
            f"{key}: {kind or 'no extension'} is not one of {', '.join(SUPPORTED)}",
        )


def _text(value: str, where: str, what: str) -> str:
    found = _SURROGATE.search(value)
    if found:
        raise IngestError(
            "bad_document",
            f"{where}: {what} holds a lone surrogate \\u{ord(found.group()):04x} at character "
            f"{found.start()}, which is no text",
        )
    return value


def _document(item: Any, where: str, default_id: str) -> tuple[str, str]:
    if isinstance(item, str):
        return default_id, _text(item, where, "the text")
    if not isinstance(item, dict):
        raise IngestError(
            "bad_document", f"{where} is {type(item).__name__}, not a string or {{id, text}}"
        )
    text = item.get("text")
    if not isinstance(text, str):
        raise IngestError("bad_document", f'{where} has no "text" string')
    doc_id = item.get("id", default_id)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise IngestError("bad_document", f'{where}: "id" must be a string or an integer')
    return _text(str(doc_id), where, '"id"'), _text(text, where, '"text"')
