"""Authentication and user administration errors."""

from __future__ import annotations

from promos.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolation,
    Unauthenticated,
)


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"


class CredentialRequired(Unauthenticated):
    code = "credential_required"


class AdminRequired(PermissionDenied):
    code = "admin_required"


class CredentialNotForRoute(Unauthenticated):
    """A credential restricted to some routes, presented on another: it is no credential here
    (401 in every API, the Promos seed's included, which knows no 403)."""

    code = "credential_not_for_route"


class ScopeMissing(PermissionDenied):
    """The API key holds no scope that opens this route (the message names the one needed)."""

    code = "scope_missing"


class InvalidScope(InvalidInput):
    code = "invalid_scope"


class InvalidExpiry(InvalidInput):
    code = "invalid_expiry"


class InvalidGrace(InvalidInput):
    code = "invalid_grace"


class ApiKeyRevoked(Conflict):
    """A revoked key cannot be rotated back to life."""

    code = "api_key_revoked"


class UserExists(Conflict):
    code = "user_exists"


class UserNotFound(NotFound):
    code = "user_not_found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class InvalidUsername(InvalidInput):
    code = "invalid_username"


class WeakPassword(InvalidInput):
    code = "weak_password"


class NoPassword(PermissionDenied):
    """The credential has no password of its own to change (an API key)."""

    code = "no_password"


class WrongPassword(PermissionDenied):
    """The current password given to change it is not the user's."""

    code = "wrong_password"


class LastAdmin(Conflict):
    """Disabling this user would leave no enabled admin to manage users and keys."""

    code = "last_admin"


class CannotDisableSelf(RuleViolation):
    """An admin may not disable their own user (another admin may)."""

    code = "cannot_disable_self"
