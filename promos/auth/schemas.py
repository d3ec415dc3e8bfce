"""Request and response bodies of sign-in, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from promos.auth.service import Role
from promos.http.pagination import PageOut

Username = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s:]+$")]


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
    password: Annotated[str, Field(min_length=8, max_length=1024)]
    role: Role = "sales"


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


class UserPage(PageOut):
    items: Annotated[list[UserOut], Field(description="this page's users")]


class ApiKeyPage(PageOut):
    items: Annotated[list[ApiKeyOut], Field(description="this page's API keys")]
