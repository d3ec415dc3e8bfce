"""Every (method, path) an app serves, for the tests that must cover each route."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from fastapi import FastAPI

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before lazily included routers: app.routes is already flat

    def iter_route_contexts(routes: Any) -> Any:
        return iter(routes)


def app_routes(app: FastAPI) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Every (method, path) the app serves, documented or not, with its path parameters."""
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            found[method.upper(), path] = {
                p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "path"
            }
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if path is not None and method != "HEAD":
                found.setdefault((method, path), {})
    return found


def concrete_path(path: str, params: dict[str, dict[str, Any]]) -> str:
    """The path with a well-formed value in each parameter."""

    def sample(match: re.Match[str]) -> str:
        schema = params.get(match.group(1), {})
        if schema.get("format") == "uuid":
            return str(UUID(int=1))
        return "1"

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", sample, path)
