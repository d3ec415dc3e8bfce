"""Path templates like ``/offers/{offer_id}/impressions``, matched without the framework."""

from __future__ import annotations

import re


def path_pattern(template: str) -> re.Pattern[str]:
    """A regular expression for a path like ``/offers/{offer_id}/impressions``."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(re.escape(p) if n % 2 == 0 else f"(?P<{p}>[^/]+)" for n, p in enumerate(parts))
    )
