"""Domain errors. They know nothing of HTTP; ``promos.http.errors`` maps them in one place."""

from __future__ import annotations

from typing import Any


class PromosError(Exception):
    """Base of every error a caller can cause; ``code`` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(PromosError):
    """The request is malformed as a request (e.g. a query parameter the route does not take),
    before any of its values is looked at."""

    code = "bad_request"


class InvalidInput(PromosError):
    code = "invalid_input"


class NotFound(PromosError):
    code = "not_found"


class Conflict(PromosError):
    code = "conflict"


class Gone(PromosError):
    code = "gone"


class Unauthenticated(PromosError):
    code = "unauthenticated"


class PermissionDenied(PromosError):
    code = "permission_denied"


class RuleViolation(PromosError):
    """A business rule forbids the operation for this caller right now."""

    code = "rule_violation"


class PayloadTooLarge(PromosError):
    code = "payload_too_large"


class Unavailable(PromosError):
    """Promos cannot serve the request right now (its database failed); retrying may work."""

    code = "unavailable"


class Internal(PromosError):
    """Promos failed in a way its caller did not cause (its database is down, or a bug): only
    ever made to render a 500 in the shape of the API that was called."""

    code = "internal"


class TooManyRequests(PromosError):
    """The caller went over a rate limit; ``retry_after`` whole seconds until one would pass."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after
