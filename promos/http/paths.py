"""Path templates like ``/offers/{offer_id}/impressions``, matched without the framework."""

from __future__ import annotations

import re
from collections.abc import Iterable

from promos.auth.service import Route


def path_pattern(template: str) -> re.Pattern[str]:
    """A regular expression for a path like ``/offers/{offer_id}/impressions``."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(re.escape(p) if n % 2 == 0 else f"(?P<{p}>[^/]+)" for n, p in enumerate(parts))
    )


class RouteSet:
    """Some routes, recognised from a request's method and path before the router runs."""

    def __init__(self, routes: Iterable[Route]) -> None:
        listed = list(routes)
        self._exact = {route for route in listed if "{" not in route[1]}
        self._templated = [(route, path_pattern(route[1])) for route in listed if "{" in route[1]]

    def match(self, method: str, path: str) -> Route | None:
        """The route of this request, if it is one of these."""
        if (method, path) in self._exact:
            return method, path
        for route, pattern in self._templated:
            if route[0] == method and pattern.fullmatch(path):
                return route
        return None
