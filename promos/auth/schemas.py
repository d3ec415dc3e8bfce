"""Request and response bodies of sign-in, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from promos.auth.service import ApiKey, Principal, Role, User

Username = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s:]+$")]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    created_at: datetime
    disabled: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            created_at=user.created_at,
            disabled=user.disabled,
        )


class TokenOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class WhoAmI(BaseModel):
    kind: str
    id: int
    name: str
    role: Role

    @classmethod
    def of(cls, principal: Principal) -> WhoAmI:
        return cls(
            kind=principal.kind,
            id=principal.id,
            name=principal.name,
            role=principal.role,
        )


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
    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    revoked: bool

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            role=key.role,
            created_at=key.created_at,
            revoked=key.revoked,
        )


class NewApiKeyOut(ApiKeyOut):
    key: Annotated[str, Field(description="The secret; shown this once, stored only as a digest")]
