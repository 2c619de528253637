"""The request body before any route sees it: bytes -> text -> one bounded JSON object.

API Gateway hands the body as a string, base64-encoded when binary; this module decodes it, holds
it to MAX_REQUEST_BYTES, and parses it with bounds Python's json module lacks: nesting past
``MAX_DEPTH`` is refused before parsing (json.loads would recurse ~1,000 deep and raise
RecursionError), an integer literal past Python's 4,300-digit limit becomes a marker that
validation names by field, and a body that is not an object is a 400 that says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from typing import Any

from handler.errors import ApiError


class HugeNumber:
    """An integer literal past Python's 4,300-digit limit, kept as this marker by the parser so
    validation names the field it is in (a number where a string, bool or small int belongs)."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def json_type(value: Any) -> str:
    """The JSON name of a parsed value, for messages (never a Python repr)."""
    names = {bool: "a boolean", int: "a number", float: "a number", dict: "an object"}
    names.update({list: "a list", type(None): "null", str: "a string", HugeNumber: "a number"})
    return names.get(type(value), "a value of another type")


MAX_DEPTH = 32  # every request nests 3 deep at most; 32 leaves clients room for their own fields
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON lets "\\ud800" through; tokenizers do not
# A JSON string: possessive runs, and the closing quote optional, so the pattern never fails once
# it has started and an unclosed string ends the text. Without both, every quote of an unclosed
# '"\\"\\"...' would restart a scan to the end: quadratic time.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300


def decode(event: dict[str, Any], max_bytes: int) -> str | None:
    """The body as text: base64 undone, at most ``max_bytes`` bytes, UTF-8. ApiError otherwise."""
    body = event.get("body")
    if body is None:
        return None
    if not isinstance(body, str):
        raise ApiError("bad_event", f"the event's body is {json_type(body)}, not a string", "body")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                "bad_base64", "the body is marked isBase64Encoded but is not valid base64", "body"
            ) from None
    else:
        raw = body.encode("utf-8", "surrogatepass")  # a lone surrogate fails the UTF-8 check
    if len(raw) > max_bytes:
        raise ApiError(
            "request_too_large",
            f"the body is {len(raw)} bytes; at most {max_bytes} (MAX_REQUEST_BYTES)",
            "body",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            "bad_encoding", f"the body is not UTF-8 text (byte {exc.start})", "body"
        ) from None


def nesting_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings not counted)."""
    import numpy as np

    stripped = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(stripped, dtype=np.uint8)
    steps = (codes == ord("[")).astype(np.int32) + (codes == ord("{"))
    steps -= (codes == ord("]")).astype(np.int32) + (codes == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def _parse_int(literal: str) -> int | HugeNumber:
    digits = len(literal.lstrip("-"))
    return int(literal) if digits <= _MAX_DIGITS else HugeNumber(digits)


def parse(text: str) -> dict[str, Any]:
    """The body's JSON object: what handler.middleware.request_body hands to validation (and
    the resolvers' json_body_deserializer, so any other reader gets the same bounds).
    json.JSONDecodeError for text that is not JSON (request_body answers it as json_invalid);
    ApiError for the rest."""
    # Fast path: a body with few brackets cannot nest deeply (str.count is C speed).
    if text.count("[") + text.count("{") > MAX_DEPTH:
        depth = nesting_depth(text)
        if depth > MAX_DEPTH:
            raise ApiError(
                "json_too_deep",
                f"the request body nests {depth} levels deep; at most {MAX_DEPTH}",
                "body",
            )
    try:
        value = json.loads(text, parse_int=_parse_int)
    except RecursionError:  # unreachable past the depth check; kept as a 400, never a 500
        raise ApiError("json_too_deep", "the request body nests too deeply", "body") from None
    if not isinstance(value, dict):
        raise ApiError(
            "body_not_object",
            f"the request body must be a JSON object, not {json_type(value)}",
            "body",
        )
    return value


__all__ = [
    "LONE_SURROGATE",
    "MAX_DEPTH",
    "HugeNumber",
    "decode",
    "json_type",
    "nesting_depth",
    "parse",
]
