"""What can go wrong when reading the audit log."""

from __future__ import annotations

from promos.errors import InvalidInput


class InvalidActor(InvalidInput):
    code = "invalid_actor"
