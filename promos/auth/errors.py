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


class SecondFactorRequired(Unauthenticated):
    """The password was right, and the user signs in with a second factor too: send ``otp``
    (a current code, or a recovery code)."""

    code = "second_factor_required"


class InvalidSecondFactor(Unauthenticated):
    """The code given is not a current, unused code of the user, nor an unused recovery code."""

    code = "invalid_second_factor"


class WrongSecondFactor(PermissionDenied):
    """A signed-in user's code, given to confirm or disable two-factor sign-in, is wrong."""

    code = "wrong_second_factor"


class BasicRefusedForTwoFactor(Unauthenticated):
    """HTTP Basic cannot carry a second factor: a user who has one signs in for a token."""

    code = "basic_refused_two_factor"


class TwoFactorEnrolmentRequired(PermissionDenied):
    """An admin without two-factor sign-in while it is required for admins: their credential
    opens only their own account's routes until they enrol."""

    code = "two_factor_enrolment_required"


class TwoFactorEnabled(Conflict):
    """Two-factor sign-in is on already: disable it first to enrol a new device."""

    code = "two_factor_enabled"


class TwoFactorNotStarted(Conflict):
    """Nothing to confirm or disable: no enrolment was started, or it is on/off already."""

    code = "two_factor_not_started"


class TwoFactorForPeople(PermissionDenied):
    """Two-factor sign-in is for people: an API key or the Offers seed's pair has none."""

    code = "two_factor_for_people"


class EnrolBeforeRequiring(RuleViolation):
    """An admin who has no second factor may not require one of every admin: they would be
    the first one locked out of everything but enrolling."""

    code = "enrol_before_requiring"
