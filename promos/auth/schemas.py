"""Request and response bodies of sign-in, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from promos.auth.service import MAX_ROTATION_GRACE, MIN_PASSWORD_LENGTH, Role
from promos.http.pagination import PageOut
from promos.validation import HIDDEN, MAX_NAME_LENGTH, PRINTABLE, STORABLE, Lookup, Name, Secret

# A user name is also half of an HTTP Basic credential: no colon.
Username = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=rf"^[^\s:{HIDDEN}]+$")
]
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=1024,
        pattern=STORABLE,
        description=f"At least {MIN_PASSWORD_LENGTH} characters",
    ),
]

# A TOTP code (6 digits) or a recovery code (xxxx-xxxx-xxxx-xxxx).
SecondFactor = Annotated[
    str, Field(min_length=1, max_length=64, pattern=STORABLE, examples=["123456"])
]


class SignIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"login": "admin", "password": "a long password"}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    login: Lookup
    """The user name."""
    password: Secret
    """The password."""
    otp: SecondFactor | None = None
    """A user with two-factor sign-in: a current code from their authenticator app, or an
    unused recovery code (without it: 401 second_factor_required)."""


class UserOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    id: int
    """The user's id."""
    username: str
    """The name to sign in with."""
    role: Role
    """Admin or sales."""
    created_at: datetime
    """When it was made."""
    disabled: bool
    """Whether it was disabled (it can no longer sign in)."""
    two_factor: bool = False
    """Whether they sign in with a second factor (TOTP)."""


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "pt_Kq0c7n3YV1xH2m9dR4tW8zB6aE5fJ0sL1pU3gN7iO2c",
                    "expires_at": "2026-03-02T12:00:00Z",
                    "user": {
                        "id": 1,
                        "username": "admin",
                        "role": "admin",
                        "created_at": "2026-03-01T12:00:00Z",
                        "disabled": False,
                    },
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    token: str
    """The bearer token: Authorization: Bearer <token>."""
    expires_at: datetime
    """When it stops working."""
    user: UserOut
    """Whose it is."""


class WhoAmI(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    kind: str
    """User or api_key."""
    id: int
    """The user's or key's id."""
    name: str
    """The user name or the key's name."""
    role: Role
    """Admin or sales."""


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "sally", "password": "a long password", "role": "sales"}]
        },
        use_attribute_docstrings=True,
        extra="forbid",
    )

    username: Username
    """The name to sign in with (no spaces or colons)."""
    password: NewPassword
    """At least 8 characters."""
    role: Role = "sales"
    """Admin or sales."""


class PasswordChange(BaseModel):
    """The signed-in user's own change: the current password proves it is them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"current_password": "a long password", "new_password": "a longer password"}
            ]
        },
        use_attribute_docstrings=True,
        extra="forbid",
    )

    current_password: Secret
    """The password the user signs in with now."""
    new_password: NewPassword
    """The password from now on: at least 8 characters."""


class PasswordReset(BaseModel):
    """An admin's reset of another user's password."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"password": "a new long password"}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    password: NewPassword
    """The user's new password: at least 8 characters."""


ScopeText = Annotated[str, Field(min_length=1, max_length=4000, pattern=PRINTABLE)]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "checkout service", "role": "sales", "scopes": ["promocodes:use"]}
            ]
        },
        use_attribute_docstrings=True,
        extra="forbid",
    )

    name: Name
    """What the key is for, e.g. the service that uses it."""
    role: Role = "sales"
    """What the key may do: admin or sales."""
    scopes: Annotated[list[ScopeText], Field(min_length=1, max_length=100)] | None = None
    """All the key may do, e.g. `["promocodes:use"]` or `["games:use:galaxy"]`
    (`kind:action` or `kind:action:id,id`; docs/operations.md lists them); left out: every
    scope of its role."""
    expires_at: AwareDatetime | None = None
    """When the key stops working by itself (with a time zone; in the future); left out:
    never."""


class ApiKeyRotate(BaseModel):
    """A new secret for a key; the one it replaces works ``grace_seconds`` longer."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"grace_seconds": 86400}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    grace_seconds: Annotated[int, Field(ge=0, le=int(MAX_ROTATION_GRACE.total_seconds()))]
    """How long the replaced secret still works, in seconds (0: not at all; at most 30
    days), so that the services using it can be given the new one."""


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    id: int
    """The key's id."""
    name: str
    """What the key is for."""
    prefix: str
    """The secret's first characters, to tell keys apart."""
    role: Role
    """Admin or sales."""
    created_at: datetime
    """When it was made."""
    revoked: bool
    """Whether it was revoked (it no longer works)."""
    scopes: list[str] | None
    """All the key may do (`kind:action[:ids]`); null: every scope of its role."""
    expires_at: datetime | None
    """When it stops working by itself; null: never."""
    rotated_at: datetime | None
    """When its secret was last replaced; null: never."""
    previous_valid_until: datetime | None
    """Until when the secret a rotation replaced still works (the latest); null: none."""
    last_used_at: datetime | None
    """When it was last used, as of the last flush of the counts (each process adds its
    counts every PROMOS_API_KEY_USAGE_FLUSH_SECONDS); null: never."""
    last_used_from: str | None
    """The client address of its last request (an IPv6 client's /64 network)."""
    request_count: int
    """How many requests it made (as of the last flush)."""


class NewApiKeyOut(ApiKeyOut):
    key: Annotated[str, Field(description="The secret; shown this once, stored only as a digest")]


class UserPage(PageOut):
    items: Annotated[list[UserOut], Field(description="this page's users")]


class ApiKeyPage(PageOut):
    items: Annotated[list[ApiKeyOut], Field(description="this page's API keys")]


class TwoFactorOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    enabled: bool
    """Whether the user signs in with a second factor."""
    pending: bool
    """An enrolment was started and waits for its confirmation with a code."""
    recovery_codes_left: int
    """Unused recovery codes (0 while it is off)."""
    required: bool
    """Whether admins must sign in with a second factor (and this user is an admin)."""


class EnrolmentOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    secret: str
    """The TOTP secret (base32), to type into an authenticator app."""
    uri: str
    """The same as an otpauth:// URI, for a QR code."""


class CodeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"otp": "123456"}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    otp: SecondFactor
    """A current code from the authenticator app."""


class RecoveryCodesOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    recovery_codes: list[str]
    """Each works once in place of a code: shown this once, stored only as digests."""


class TwoFactorDisable(BaseModel):
    """Proof that it is the user: a current code (or a recovery code), or the password."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"otp": "123456"}, {"password": "a long password"}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    otp: SecondFactor | None = None
    """A current code, or an unused recovery code."""
    password: Secret | None = None
    """The user's password (for a lost device)."""


class AuthSettingsOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    require_two_factor_for_admins: bool
    """Whether every admin must sign in with a second factor."""


class AuthSettingsIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"require_two_factor_for_admins": True}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    require_two_factor_for_admins: bool
    """Whether every admin must sign in with a second factor."""
