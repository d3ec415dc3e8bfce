"""Settings from ``PROMOS_*`` environment variables (and the seed systems' own names), and from
a ``.env`` file in the working directory for what the environment does not set."""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from promos.auth.service import MIN_PASSWORD_LENGTH, USERNAME
from promos.datadir import default_database_url
from promos.events.destinations import parse_allowed
from promos.events.signing import check_secret

# Read by the commands and the server from their working directory; the environment wins.
ENV_FILE = ".env"

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


def _alias(name: str, *seed_names: str) -> AliasChoices:
    return AliasChoices(f"PROMOS_{name}", *seed_names)


class Settings(BaseSettings):
    """Everything Promos can be configured with; docs/settings.md lists each with its default."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: Annotated[
        str,
        Field(
            default_factory=default_database_url,
            validation_alias=_alias("DATABASE_URL", "DATABASE_URL"),
        ),
    ]
    host: Annotated[str, Field(validation_alias=_alias("HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, validation_alias=_alias("PORT"))] = 8000
    workers: Annotated[int, Field(ge=1, le=256, validation_alias=_alias("WORKERS"))] = 1
    # On SIGTERM, how long requests already begun may take before they are cancelled.
    # How long a worker process of `promos serve --workers N` may take to answer its
    # supervisor (at start: importing Promos and starting the app) before it is restarted.
    worker_healthcheck_seconds: Annotated[
        int, Field(ge=1, le=3600, validation_alias=_alias("WORKER_HEALTHCHECK_SECONDS"))
    ] = 30
    shutdown_timeout_seconds: Annotated[
        int, Field(ge=1, le=3600, validation_alias=_alias("SHUTDOWN_TIMEOUT_SECONDS"))
    ] = 30
    log_level: Annotated[LogLevel, Field(validation_alias=_alias("LOG_LEVEL"))] = "info"
    # Logs and metrics (docs/operations.md): JSON lines on stderr, text on a terminal.
    log_format: Annotated[
        Literal["auto", "json", "text"], Field(validation_alias=_alias("LOG_FORMAT"))
    ] = "auto"
    access_log: Annotated[bool, Field(validation_alias=_alias("ACCESS_LOG"))] = True
    metrics: Annotated[bool, Field(validation_alias=_alias("METRICS"))] = True
    # A bearer token for Prometheus alone; admins' credentials are accepted too.
    metrics_token: Annotated[
        SecretStr | None, Field(min_length=16, validation_alias=_alias("METRICS_TOKEN"))
    ] = None

    admin_user: Annotated[str | None, Field(validation_alias=_alias("ADMIN_USER"))] = None
    admin_password: Annotated[
        SecretStr | None,
        Field(min_length=MIN_PASSWORD_LENGTH, validation_alias=_alias("ADMIN_PASSWORD")),
    ] = None
    token_ttl_seconds: Annotated[
        int, Field(ge=60, validation_alias=_alias("TOKEN_TTL_SECONDS"))
    ] = 12 * 3600
    # How long a verified credential is trusted without asking the database (or argon2) again.
    # A revoked key or token stops working at most this many seconds later.
    auth_cache_seconds: Annotated[
        float, Field(ge=0, le=300, validation_alias=_alias("AUTH_CACHE_SECONDS"))
    ] = 10.0
    # Each process counts its API keys' requests in memory and adds them to the keys' rows
    # this often (their last use is as of the last flush): promos.auth.usage.
    api_key_usage_flush_seconds: Annotated[
        float, Field(ge=1, le=3600, validation_alias=_alias("API_KEY_USAGE_FLUSH_SECONDS"))
    ] = 30.0

    # The web console at /admin (docs/console.md): its sessions expire after this many idle
    # minutes, and this many hours after sign-in whatever happens.
    console: Annotated[bool, Field(validation_alias=_alias("CONSOLE"))] = True
    console_idle_minutes: Annotated[
        int, Field(ge=1, le=24 * 60, validation_alias=_alias("CONSOLE_IDLE_MINUTES"))
    ] = 30
    console_session_hours: Annotated[
        int, Field(ge=1, le=30 * 24, validation_alias=_alias("CONSOLE_SESSION_HOURS"))
    ] = 12
    # Secure cookies even when the request reached Promos over plain HTTP (a proxy that
    # terminates TLS without saying so in X-Forwarded-Proto).
    console_secure_cookies: Annotated[
        bool, Field(validation_alias=_alias("CONSOLE_SECURE_COOKIES"))
    ] = False
    # The dashboard: a pool with fewer free codes than this is running low; its figures are
    # read again once they are this many seconds old.
    console_low_pool_codes: Annotated[
        int, Field(ge=1, le=1_000_000, validation_alias=_alias("CONSOLE_LOW_POOL_CODES"))
    ] = 1000
    console_dashboard_seconds: Annotated[
        float, Field(ge=0, le=300, validation_alias=_alias("CONSOLE_DASHBOARD_SECONDS"))
    ] = 10.0

    # Promo code holds (docs/operations.md): the longest a hold may last (a longer
    # ttl_seconds is cut to this), and whether a lapsed hold may still be confirmed when a
    # use of its code is free then (a pool code hold's too, while its code is free for it).
    promocode_hold_max_seconds: Annotated[
        int, Field(ge=1, le=7 * 24 * 3600, validation_alias=_alias("PROMOCODE_HOLD_MAX_SECONDS"))
    ] = 3600
    promocode_hold_late_confirm: Annotated[
        bool, Field(validation_alias=_alias("PROMOCODE_HOLD_LATE_CONFIRM"))
    ] = False
    # Pool code holds (docs/operations.md): the longest a hold may last (a longer
    # ttl_seconds is cut to this).
    pool_hold_max_seconds: Annotated[
        int, Field(ge=1, le=7 * 24 * 3600, validation_alias=_alias("POOL_HOLD_MAX_SECONDS"))
    ] = 3600
    # How often each process ends the lapsed pool code holds (0: never; they end when next
    # asked about).
    pool_hold_sweep_seconds: Annotated[
        float, Field(ge=0, le=3600, validation_alias=_alias("POOL_HOLD_SWEEP_SECONDS"))
    ] = 60.0

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

    # Clients that send too much or too slowly, refused by the server itself (docs/settings.md).
    max_header_bytes: Annotated[
        int, Field(ge=1024, le=16 * 1024 * 1024, validation_alias=_alias("MAX_HEADER_BYTES"))
    ] = 32 * 1024
    max_headers: Annotated[int, Field(ge=8, le=10_000, validation_alias=_alias("MAX_HEADERS"))] = (
        100
    )
    header_timeout_seconds: Annotated[
        float, Field(gt=0, le=3600, validation_alias=_alias("HEADER_TIMEOUT_SECONDS"))
    ] = 10.0
    body_timeout_seconds: Annotated[
        float, Field(gt=0, le=3600, validation_alias=_alias("BODY_TIMEOUT_SECONDS"))
    ] = 10.0
    body_min_bytes_per_second: Annotated[
        float, Field(gt=0, le=10**9, validation_alias=_alias("BODY_MIN_BYTES_PER_SECOND"))
    ] = 1024.0

    # Issuing codes: concurrent requests are collected and served by one transaction each.
    issue_batch_size: Annotated[
        int, Field(ge=1, le=1000, validation_alias=_alias("ISSUE_BATCH_SIZE"))
    ] = 64
    # At most this many issuing statements in flight per process; fewer while the load is
    # light (promos.batching: a group leaves as soon as one is free). 2 measured best on 2
    # cores at every connection count from 1 to 256 (docs/performance.md).
    issue_concurrency: Annotated[
        int, Field(ge=1, le=256, validation_alias=_alias("ISSUE_CONCURRENCY"))
    ] = 2
    issue_linger_ms: Annotated[
        float, Field(ge=0, le=50, validation_alias=_alias("ISSUE_LINGER_MS"))
    ] = 0.0

    fast_path: Annotated[bool, Field(validation_alias=_alias("FAST_PATH"))] = True
    # PostgreSQL connections of the promo codes' lean path (redeem, hold, confirm) per process.
    fast_path_connections: Annotated[
        int, Field(ge=1, le=256, validation_alias=_alias("FAST_PATH_CONNECTIONS"))
    ] = 8
    compat_ango: Annotated[bool, Field(validation_alias=_alias("COMPAT_ANGO"))] = True

    # Offers (seed 004).
    compat_offers: Annotated[bool, Field(validation_alias=_alias("COMPAT_OFFERS"))] = True
    offers_cache_max_age_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=365 * 24 * 3600,
            validation_alias=_alias("OFFERS_CACHE_MAX_AGE_SECONDS", "OFFERS_CACHE_MAXAGESECONDS"),
        ),
    ] = 300
    # How long each process holds a game's offers in memory (0: read them on every request).
    offers_catalog_seconds: Annotated[
        float, Field(ge=0, le=60, validation_alias=_alias("OFFERS_CATALOG_SECONDS"))
    ] = 1.0
    # Player routes: concurrent history reads, claims and impressions are served in groups.
    offers_batch_size: Annotated[
        int, Field(ge=1, le=1000, validation_alias=_alias("OFFERS_BATCH_SIZE"))
    ] = 64
    offers_concurrency: Annotated[
        int, Field(ge=1, le=256, validation_alias=_alias("OFFERS_CONCURRENCY"))
    ] = 2
    # The player routes are public (the seed's); true: each needs a key with games:use on its
    # game (a game server's key, docs/operations.md).
    offers_players_need_key: Annotated[
        bool, Field(validation_alias=_alias("OFFERS_PLAYERS_NEED_KEY"))
    ] = False
    # The Offers seed's own Basic credential, honoured besides Promos' users.
    offers_basic_auth_username: Annotated[
        str | None,
        Field(validation_alias=_alias("OFFERS_BASIC_AUTH_USERNAME", "OFFERS_BASICAUTH_USERNAME")),
    ] = None
    offers_basic_auth_password: Annotated[
        SecretStr | None,
        Field(validation_alias=_alias("OFFERS_BASIC_AUTH_PASSWORD", "OFFERS_BASICAUTH_PASSWORD")),
    ] = None
    compat_promos: Annotated[bool, Field(validation_alias=_alias("COMPAT_PROMOS"))] = True
    compat_discounts: Annotated[bool, Field(validation_alias=_alias("COMPAT_DISCOUNTS"))] = True

    # Referrals (seed 003) and webhooks.
    compat_referral: Annotated[bool, Field(validation_alias=_alias("COMPAT_REFERRAL"))] = True
    referral_callback_url: Annotated[
        str | None,
        Field(
            validation_alias=_alias("REFERRAL_CALLBACK_URL", "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP")
        ),
    ] = None
    webhook_secret: Annotated[
        SecretStr | None, Field(min_length=16, validation_alias=_alias("WEBHOOK_SECRET"))
    ] = None
    # Hosts (names, addresses, CIDR networks) that webhooks may reach although they are not
    # public addresses: without them, loopback, private and link-local ones are refused.
    webhook_allowed_hosts: Annotated[
        str, Field(max_length=10_000, validation_alias=_alias("WEBHOOK_ALLOWED_HOSTS"))
    ] = ""
    webhook_dispatcher: Annotated[bool, Field(validation_alias=_alias("WEBHOOK_DISPATCHER"))] = True
    webhook_max_attempts: Annotated[
        int, Field(ge=1, le=100, validation_alias=_alias("WEBHOOK_MAX_ATTEMPTS"))
    ] = 20
    webhook_retry_base_seconds: Annotated[
        float, Field(gt=0, le=3600, validation_alias=_alias("WEBHOOK_RETRY_BASE_SECONDS"))
    ] = 2.0
    webhook_retry_max_seconds: Annotated[
        float, Field(gt=0, le=86400, validation_alias=_alias("WEBHOOK_RETRY_MAX_SECONDS"))
    ] = 3600.0
    webhook_timeout_seconds: Annotated[
        float, Field(gt=0, le=300, validation_alias=_alias("WEBHOOK_TIMEOUT_SECONDS"))
    ] = 10.0
    webhook_poll_seconds: Annotated[
        float, Field(gt=0, le=3600, validation_alias=_alias("WEBHOOK_POLL_SECONDS"))
    ] = 1.0

    # Rate limits (docs/operations.md): N requests per window per key, 0 turns a class off.
    # Shared by every worker and node through Redis when PROMOS_REDIS_URL is set.
    redis_url: Annotated[str | None, Field(validation_alias=_alias("REDIS_URL"))] = None
    rate_limit_prefix: Annotated[
        str, Field(min_length=1, max_length=100, validation_alias=_alias("RATE_LIMIT_PREFIX"))
    ] = "promos:rl:"
    rate_limit_public: Annotated[
        int, Field(ge=0, le=10_000_000, validation_alias=_alias("RATE_LIMIT_PUBLIC"))
    ] = 600
    rate_limit_public_window_seconds: Annotated[
        float, Field(gt=0, le=86400, validation_alias=_alias("RATE_LIMIT_PUBLIC_WINDOW_SECONDS"))
    ] = 60.0
    rate_limit_offers: Annotated[
        int, Field(ge=0, le=10_000_000, validation_alias=_alias("RATE_LIMIT_OFFERS"))
    ] = 0
    rate_limit_offers_window_seconds: Annotated[
        float, Field(gt=0, le=86400, validation_alias=_alias("RATE_LIMIT_OFFERS_WINDOW_SECONDS"))
    ] = 1.0
    rate_limit_signin_per_client: Annotated[
        int, Field(ge=0, le=10_000_000, validation_alias=_alias("RATE_LIMIT_SIGNIN_PER_CLIENT"))
    ] = 30
    rate_limit_signin_per_login: Annotated[
        int, Field(ge=0, le=10_000_000, validation_alias=_alias("RATE_LIMIT_SIGNIN_PER_LOGIN"))
    ] = 10
    rate_limit_signin_window_seconds: Annotated[
        float, Field(gt=0, le=86400, validation_alias=_alias("RATE_LIMIT_SIGNIN_WINDOW_SECONDS"))
    ] = 300.0
    rate_limit_max_keys: Annotated[
        int, Field(ge=100, le=100_000_000, validation_alias=_alias("RATE_LIMIT_MAX_KEYS"))
    ] = 100_000
    # Proxies whose X-Forwarded-For names the client (uvicorn's setting; "*" trusts anybody).
    forwarded_allow_ips: Annotated[
        str, Field(validation_alias=_alias("FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"))
    ] = "127.0.0.1"

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, level: object) -> object:
        return level.lower() if isinstance(level, str) else level

    @field_validator("admin_user")
    @classmethod
    def _username(cls, name: str | None) -> str | None:
        if name is not None and not USERNAME.fullmatch(name):
            raise ValueError("must be 1 to 255 characters, without spaces or colons")
        return name

    @model_validator(mode="after")
    def _admin_is_whole(self) -> Settings:
        if (self.admin_user is None) != (self.admin_password is None):
            raise ValueError(
                "PROMOS_ADMIN_USER and PROMOS_ADMIN_PASSWORD go together: set both (to create "
                "the first admin) or neither"
            )
        return self

    @field_validator("referral_callback_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (with %s for the user hash)")
        return url or None

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, entries: str) -> str:
        parse_allowed(entries)
        return entries

    @field_validator("webhook_secret")
    @classmethod
    def _standard_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            check_secret(secret.get_secret_value())
        return secret

    @model_validator(mode="after")
    def _callbacks_are_signed(self) -> Settings:
        if self.referral_callback_url and self.webhook_secret is None:
            raise ValueError(
                "PROMOS_REFERRAL_CALLBACK_URL needs PROMOS_WEBHOOK_SECRET (16 characters or "
                "more): every callback is signed with it"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url or None

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
        f"must start with postgresql:// or sqlite:// (got {url.split('://', 1)[0]}://)"
    )


class InvalidSettings(Exception):
    """Settings that cannot be used: one line per bad setting, naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def from_environment() -> Settings:
    """This process's settings: its environment, then ``.env`` in the working directory (the
    environment wins), then the defaults; or ``InvalidSettings``."""
    try:
        return Settings(_env_file=ENV_FILE, _env_file_encoding="utf-8")
    except ValidationError as exc:
        raise InvalidSettings(problems(exc)) from None
    except ValueError as exc:  # where the default database goes (data_directory)
        raise InvalidSettings([str(exc)]) from None


def problems(exc: ValidationError) -> list[str]:
    """One line per bad setting: its variable, what it must be, and (unless it may be a secret)
    what it is."""
    variables = _variables()
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        found = variables.get(str(error["loc"][0])) if error["loc"] else None
        if found is None:  # a rule between settings: its message names them
            lines.append(message)
            continue
        names, field = found
        if error["type"] != "value_error":  # a field's own validator says what it must be
            allowed = _allowed(field)
            message = f"must be {allowed}" if allowed else message[:1].lower() + message[1:]
        secret = _bare(field.annotation) is SecretStr or names.split()[0].endswith("_URL")
        value = "" if secret else f', not "{error["input"]}"'
        lines.append(f"{names} {message}{value}")
    return lines


def _variables() -> dict[str, tuple[str, FieldInfo]]:
    """Each setting by the variable name that errors name it by: its names, and the field."""
    found = {}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            own, *seeds = [str(choice) for choice in alias.choices]
            names = own + "".join(f" (or {seed})" for seed in seeds if seed != own)
            found[own] = (names, field)
    return found


def _bare(annotation: object) -> object:
    """``X`` of ``X | None``."""
    args = [arg for arg in get_args(annotation) if arg is not NoneType]
    return (
        args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation
    )


def _allowed(field: FieldInfo) -> str | None:
    """What a setting may be, from its type and bounds, e.g. "a whole number from 1 to 256"."""
    kind = _bare(field.annotation)
    # annotated_types' Ge(ge=1), Le(le=...), Gt(gt=...), MinLen(min_length=...), MaxLen(...)
    limits: dict[str, object] = {}
    for limit in field.metadata:
        for bound in ("ge", "le", "gt", "min_length", "max_length"):
            if hasattr(limit, bound):
                limits[bound] = getattr(limit, bound)
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(kind))
    if kind is bool:
        return "true or false"
    if kind in (int, float):
        return _number("a whole number" if kind is int else "a number", limits)
    shortest, longest = limits.get("min_length"), limits.get("max_length")
    if shortest is not None and longest is not None:
        return f"{shortest} to {longest} characters long"
    return f"{shortest} characters or more" if shortest is not None else None


def _number(noun: str, limits: dict[str, object]) -> str:
    low, above, high = limits.get("ge"), limits.get("gt"), limits.get("le")
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    bounds = [
        *([f"{low} or more"] if low is not None else []),
        *([f"more than {above}"] if above is not None else []),
        *([f"{high} or less"] if high is not None else []),
    ]
    return ", ".join([noun, " and ".join(bounds)]) if bounds else noun
