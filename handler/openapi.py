"""The OpenAPI document (/openapi.json) and Swagger UI (/docs), built when first asked for.

The routes name their request models and response types as strings (their request annotations,
under ``from __future__ import annotations``, and ``responses(...)``), so importing them costs no
pydantic. Building the document imports handler.schemas, resolves those names in it, and lets
Powertools write the document from the routes' signatures, as it would with validation on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TITLE = "kettle"
_BOUND: list[bool] = []


def bind_schemas() -> None:
    """Give the route modules the request models their annotations name, and each route's
    ``responses`` its response types (once per process)."""
    if _BOUND:
        return
    from handler import schemas
    from handler.routes import common, image, search, text

    namespace = vars(schemas)
    for module in (text, image, search):  # they import the models only for type checkers
        for name in schemas.REQUEST_MODELS:
            vars(module).setdefault(name, namespace[name])
    common.resolve_responses(namespace)
    _BOUND.append(True)


def _version() -> str:
    from kettle import __version__

    return __version__


def document(app: Any) -> str:
    """The API's OpenAPI document as JSON."""
    bind_schemas()
    return app.get_openapi_json_schema(title=TITLE, version=_version())


def swagger_html(app: Any) -> str:
    """Swagger UI over this API's OpenAPI document, built on request: Powertools' enable_swagger
    imports its OpenAPI models (~0.1 s) when it registers the route, on every cold start."""
    import aws_lambda_powertools.event_handler as event_handler
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
    js = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    # "</" escaped so the document cannot close the page's <script> element.
    return generate_swagger_html(document(app).replace("</", "<\\/"), js, css, "", None)


__all__ = ["TITLE", "bind_schemas", "document", "swagger_html"]
