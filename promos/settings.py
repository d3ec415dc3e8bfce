"""Settings from ``PROMOS_*`` environment variables (and the seed systems' own names)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _alias(name: str, *seed_names: str) -> AliasChoices:
    return AliasChoices(f"PROMOS_{name}", *seed_names)


class Settings(BaseSettings):
    """Everything Promos can be configured with; README.md lists each with its default."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: Annotated[str, Field(validation_alias=_alias("DATABASE_URL", "DATABASE_URL"))] = (
        "sqlite:///promos.db"
    )
    host: Annotated[str, Field(validation_alias=_alias("HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, validation_alias=_alias("PORT"))] = 8000
    workers: Annotated[int, Field(ge=1, le=256, validation_alias=_alias("WORKERS"))] = 1
    log_level: Annotated[str, Field(validation_alias=_alias("LOG_LEVEL"))] = "info"

    admin_user: Annotated[str | None, Field(validation_alias=_alias("ADMIN_USER"))] = None
    admin_password: Annotated[
        SecretStr | None, Field(validation_alias=_alias("ADMIN_PASSWORD"))
    ] = None
    token_ttl_seconds: Annotated[
        int, Field(ge=60, validation_alias=_alias("TOKEN_TTL_SECONDS"))
    ] = 12 * 3600
    # How long a verified credential is trusted without asking the database (or argon2) again.
    # A revoked key or token stops working at most this many seconds later.
    auth_cache_seconds: Annotated[
        float, Field(ge=0, le=300, validation_alias=_alias("AUTH_CACHE_SECONDS"))
    ] = 10.0

    db_pool_size: Annotated[int, Field(ge=1, le=512, validation_alias=_alias("DB_POOL_SIZE"))] = 16
    db_max_overflow: Annotated[
        int, Field(ge=0, le=512, validation_alias=_alias("DB_MAX_OVERFLOW"))
    ] = 4

    max_body_bytes: Annotated[int, Field(ge=1024, validation_alias=_alias("MAX_BODY_BYTES"))] = (
        64 * 1024
    )
    max_upload_bytes: Annotated[
        int, Field(ge=1024, validation_alias=_alias("MAX_UPLOAD_BYTES"))
    ] = 1024 * 1024 * 1024

    # Issuing codes: concurrent requests are collected and served by one transaction each.
    issue_batch_size: Annotated[
        int, Field(ge=1, le=1000, validation_alias=_alias("ISSUE_BATCH_SIZE"))
    ] = 64
    issue_concurrency: Annotated[
        int, Field(ge=1, le=256, validation_alias=_alias("ISSUE_CONCURRENCY"))
    ] = 1
    issue_linger_ms: Annotated[
        float, Field(ge=0, le=50, validation_alias=_alias("ISSUE_LINGER_MS"))
    ] = 0.0

    fast_path: Annotated[bool, Field(validation_alias=_alias("FAST_PATH"))] = True
    compat_ango: Annotated[bool, Field(validation_alias=_alias("COMPAT_ANGO"))] = True

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def async_database_url(url: str) -> str:
    """Name the async driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ValueError(
        "PROMOS_DATABASE_URL must start with postgresql:// or sqlite:// "
        f"(got {url.split('://', 1)[0]}://)"
    )
