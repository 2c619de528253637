"""A request body -> the route's request object, with pydantic kept off the cold path.

handler/schemas.py's pydantic models are the one definition of every request. Importing pydantic,
building those models and Powertools' validation middleware is about 50 ms of Python holding the
GIL beside the model's load (the handler's cold start went from 0.180 to 0.160 s without them,
bench/cold_start.py), so a valid request's path does not import them. Instead:

- **accepted here**: the body is checked against the models' own JSON schemas, generated from
  them into request_schemas.json (``python -m handler.schemas``; a test holds the file to the
  models). The check is conservative: it accepts only what it is sure the model accepts (the
  schema's types, bounds, enums and required fields; no lone surrogate anywhere), fills the
  defaults, and answers an object with the model's fields as attributes.
- **anything else** goes to the pydantic model itself, imported then, which either accepts it
  (the object is the model) or names what is wrong: its errors become one ApiError naming the
  field and the item (``inputs[2]``), as they always were.

So a valid request never waits for pydantic, an invalid one gets pydantic's exact answer, and a
test (tests/handler/routes/test_handler_validation.py) holds the two to the same decisions. Why not a
JSON-schema library: jsonschema's import costs about what pydantic's does (41-49 ms against
38-61 ms for pydantic.main, ``python -X importtime``), and JSON Schema counts 1.0 as an integer
where the models' strict mode does not; the check needs about sixty lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from handler.body import LONE_SURROGATE, json_type
from handler.errors import ApiError

SCHEMAS_FILE = Path(__file__).with_name("request_schemas.json")
_SCHEMAS: dict[str, Any] = {}


class _Declined(Exception):
    """The fast check cannot vouch for this value: pydantic decides."""


class RequestFields(SimpleNamespace):
    """An accepted request body: the model's fields as attributes, defaults filled in."""


def schemas() -> dict[str, Any]:
    """The request models' JSON schemas, read once."""
    if not _SCHEMAS:
        _SCHEMAS.update(json.loads(SCHEMAS_FILE.read_text(encoding="utf-8")))
    return _SCHEMAS


def parse_request(model: str, data: Any) -> Any:
    """The ``model`` request for the parsed body ``data``: checked here when it surely passes,
    else by the pydantic model; ApiError (422) naming the field and item when it fails."""
    schema = schemas()[model]
    try:
        return _object(schema, data, schema.get("$defs", {}))
    except _Declined:
        pass
    from pydantic import ValidationError

    from handler import schemas as models

    try:
        return getattr(models, model).model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


# ---- the conservative check ----------------------------------------------------------------------
def _object(schema: dict[str, Any], value: Any, defs: dict[str, Any]) -> RequestFields:
    if not isinstance(value, dict):
        raise _Declined
    properties: dict[str, Any] = schema.get("properties", {})
    if schema.get("additionalProperties") is False and not value.keys() <= properties.keys():
        raise _Declined
    fields = {}
    for name, field in properties.items():
        if name in value:
            fields[name] = _value(field, value[name], defs)
        elif "default" in field and not isinstance(field["default"], dict | list):
            fields[name] = field["default"]
        else:  # required, or a default this check would have to copy
            raise _Declined
    return RequestFields(**fields)


def _value(schema: dict[str, Any], value: Any, defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _object(defs[schema["$ref"].rsplit("/", 1)[-1]], value, defs)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return _value(option, value, defs)
            except _Declined:
                continue
        raise _Declined
    if "enum" in schema and value not in schema["enum"]:
        raise _Declined
    kind = schema.get("type")
    if kind == "string" and isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            raise _Declined
        if LONE_SURROGATE.search(value):
            raise _Declined
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            raise _Declined
        return value
    if kind == "null" and value is None:
        return value
    if kind == "array" and isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            raise _Declined
        items = schema.get("items", {})
        return [_value(items, item, defs) for item in value]
    raise _Declined


# ---- pydantic's errors -> one ApiError -----------------------------------------------------------
_BRANCH_TAGS = {"str", "int", "bool", "list", "none", "literal"}


def _field_path(error: dict[str, Any]) -> str:
    """("inputs", 2) -> "inputs[2]"; an "index" in the error's ctx adds the item. Union branch
    tags pydantic adds to a location ("str", "function-before[...]") are dropped."""
    parts: list[str] = []
    for part in error.get("loc", ()):
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        elif isinstance(part, str) and parts and (part.endswith("]") or part in _BRANCH_TAGS):
            continue
        else:
            parts.append(str(part))
    ctx = error.get("ctx") or {}
    if "index" in ctx and parts:  # an index, or a list of them for nested items
        index = ctx["index"]
        parts[-1] += "".join(f"[{i}]" for i in (index if isinstance(index, list) else [index]))
    return ".".join(parts)


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """pydantic's errors as one ApiError: the first names the field, ``details`` lists all."""
    details = []
    for e in errors:
        field = _field_path(e)
        kind = e.get("type")
        if kind == "missing" and not field:
            message = "the request body is missing: send a JSON object"
        elif kind == "missing":
            message = f"{field} is required"
        elif kind == "extra_forbidden":
            message = f"{field} is not a field of this request"
        elif kind in {"model_type", "model_attributes_type", "dict_type"} and not field:
            message = f"the request body must be a JSON object, not {json_type(e.get('input'))}"
        else:
            msg = str(e.get("msg", "invalid"))
            message = msg if field and msg.startswith(field.split("[")[0]) else f"{field}: {msg}"
        details.append({"field": field or "body", "message": message, "type": kind})
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    kind = errors[0].get("type") if errors else None
    code = {
        "invalid_text": "invalid_text",
        "empty_list": "empty_input",
        "empty_text": "empty_input",
    }
    return ApiError(code.get(kind, "validation_error"), first["message"], first["field"], details)


def invalid_json(exc: json.JSONDecodeError) -> ApiError:
    message = f"the request body is not valid JSON: {exc.msg} at character {exc.pos}"
    return ApiError("json_invalid", message, "body")


__all__ = ["RequestFields", "invalid_json", "parse_request", "validation_error"]
