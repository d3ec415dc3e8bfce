"""Request and response bodies of sign-in, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from promos.auth.service import MIN_PASSWORD_LENGTH, Role

Username = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s:]+$")]
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=1024,
        description=f"At least {MIN_PASSWORD_LENGTH} characters",
    ),
]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    created_at: datetime
    disabled: bool


class TokenOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class WhoAmI(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    id: int
    name: str
    role: Role


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: NewPassword
    role: Role = "sales"


class PasswordChange(BaseModel):
    """The signed-in user's own change: the current password proves it is them."""

    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: NewPassword


class PasswordReset(BaseModel):
    """An admin's reset of another user's password."""

    model_config = ConfigDict(extra="forbid")

    password: NewPassword


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=255)]
    role: Role = "sales"


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    revoked: bool


class NewApiKeyOut(ApiKeyOut):
    key: Annotated[str, Field(description="The secret; shown this once, stored only as a digest")]
