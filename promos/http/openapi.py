"""The last touches to the OpenAPI document that FastAPI cannot be told route by route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_REF = "#/components/schemas/"
# FastAPI documents a 422 in its own {"detail": [...]} shape on every route that takes
# values, unless the route declares a 422 itself. The routes of the Promos API answer their
# seed's 400 instead (which they declare): no route answers FastAPI's shape.
_FASTAPI_VALIDATION = _REF + "HTTPValidationError"
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")

# The multipart bodies, which FastAPI names after the operation (Body_upload_..._post).
FORM_NAMES = {
    "Body_upload_codes_v1_batches__batch_id__codes_post": "CodesUpload",
    "Body_upload_api_v1_codes_upload_post": "AngoCodesUpload",
}


# Bodies that a route reads itself (as JSON or form fields) and documents in openapi_extra:
# FastAPI does not see them, so they are added to the components here.
_READ_BY_ROUTES: dict[str, type[BaseModel]] = {}


def body_schema(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model`` as a component of the document, for ``openapi_extra``."""
    known = _READ_BY_ROUTES.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two bodies are named {model.__name__}")
    return {"$ref": _REF + model.__name__}


def _add_bodies(schemas: dict[str, Any]) -> None:
    for name, model in _READ_BY_ROUTES.items():
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        for inner, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(inner, definition)
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"two schemas are named {name}")
        schemas[name] = schema


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _rename(node: Any, names: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(_REF) in names:
            node["$ref"] = _REF + names[ref.removeprefix(_REF)]
        for value in node.values():
            _rename(value, names)
    elif isinstance(node, list):
        for value in node:
            _rename(value, names)


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """The document without FastAPI's unused validation shape, its forms named."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                if _FASTAPI_VALIDATION in _refs(response):
                    del responses[status]
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _add_bodies(schemas)
    if _FASTAPI_VALIDATION not in _refs(document.get("paths", {})):
        for name in _FASTAPI_SCHEMAS:
            schemas.pop(name, None)
    names = {old: new for old, new in FORM_NAMES.items() if old in schemas}
    for old, new in names.items():
        schemas[new] = {**schemas.pop(old), "title": new}
    _rename(document, names)
    return document
