"""The Promos API (seed 001), exactly at its paths: sign-in, promo codes, specials, upgrades.

Where the seed writes a path without a prefix (``promocodes/...``, ``/special/{sku}``, ...),
it is served both at the root and under ``/api``; the shared CRUD lives under ``/api`` only.
Errors are the seed's ``{"error": "...", "status": N}`` with N as the HTTP status: 401 for
credentials, 413 for a body over the limit, 503 (with ``Retry-After``) while the database is
unavailable, 500 for a failure of Promos, 400 for everything else (the seed knows no other).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from promos.auth import service as auth_service
from promos.auth.errors import ScopeMissing
from promos.auth.service import Principal
from promos.catalog import changes as catalog_changes
from promos.catalog import service as catalog
from promos.catalog.errors import InvalidOffer
from promos.catalog.schemas import SpecialIn, UpgradeProgramIn
from promos.catalog.service import SpecialSpec, UpgradeProgramSpec
from promos.errors import (
    Internal,
    InvalidInput,
    PayloadTooLarge,
    PromosError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from promos.http.deps import CurrentPrincipal, State, route_of
from promos.http.errors import ErrorShape, headers_for, log_unhandled
from promos.http.ratelimit import PublicLimit, client_key
from promos.http.responses import JSON
from promos.http.routes import ApiErrors, error_route_class
from promos.http.scopes import OWN, needs
from promos.promocodes import changes as promocode_changes
from promos.promocodes import service as promocodes
from promos.promocodes.errors import PromocodeNotFound
from promos.promocodes.generate import DEFAULT_CHARSET, MAX_CODE_LENGTH, MAX_COUNT
from promos.promocodes.schemas import Day, Money, Sku
from promos.promocodes.service import GenerationSpec, Promocode, PromocodeFilter
from promos.validation import STORABLE, Email, Id, Lookup, PathId, Secret, has_control_character

MAX_ROWS = 100_000  # the seed's default {limitout}: also the most one listing returns
UPGRADE_PATTERN = "UP-##########"
NOT_VALID = "promocode not found or not valid"


class PromosErrorBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "promocode not found or not valid", "status": 400}]
        },
        use_attribute_docstrings=True,
    )

    error: str
    """What went wrong, for a person."""
    status: int
    """The HTTP status, again."""


# The seed answers 400 for any failure but a missing credential (401); the others here say
# what the seed has no status for, in its shape.
_SEED_STATUS: tuple[tuple[type[PromosError], int], ...] = (
    (Unauthenticated, 401),
    # A scoped key (Promos's own) is told what it lacks.
    (ScopeMissing, 403),
    # Answered before any route runs, for every API alike (promos.http.limits).
    (PayloadTooLarge, 413),
    (Internal, 500),
    # The seed answers 500 for any database error; a 503 says the same to a client that
    # only tells success from failure, and to one that retries, when to.
    (Unavailable, 503),
    # The seed knows no such limit: its shape, with the status that says it.
    (TooManyRequests, 429),
)


def promos_status(exc: PromosError) -> int:
    for kind, status in _SEED_STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def promos_body(exc: PromosError) -> dict[str, Any]:
    return {"error": exc.message, "status": promos_status(exc)}


def promos_error(_status: int, exc: PromosError) -> Response:
    return JSON(promos_body(exc), status_code=promos_status(exc), headers=headers_for(exc))


class PromosRoute(error_route_class(promos_error, ApiErrors(PromosErrorBody, promos_status))):  # type: ignore[misc]
    """Domain errors in the seed's shape; anything unexpected a logged 500 in that shape too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - logged by log_unhandled
                log_unhandled(request.scope, exc)
                return JSON({"error": "internal server error", "status": 500}, status_code=500)
            return response

        return handle


# The public routes, and sign-in, are rate limited (PROMOS_RATE_LIMIT_*).
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": PromosErrorBody, "description": "too many requests: see Retry-After"}
}
router = APIRouter(tags=["Promos (compat)"], route_class=PromosRoute)


def both(method: str, path: str, **kwargs: Any) -> Callable[[Any], Any]:
    """Serve a route at the seed's path and under ``/api``."""

    def register(endpoint: Any) -> Any:
        router.add_api_route(path, endpoint, methods=[method], **kwargs)
        router.add_api_route("/api" + path, endpoint, methods=[method], **kwargs)
        return endpoint

    return register


def number(value: Decimal | None) -> int | float:
    """A Decimal as the seed's JSON number: whole numbers without a fraction, 0 for none."""
    if value is None:
        return 0
    return int(value) if value == value.to_integral_value() else float(value)


class SeedPromocode(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "code": "SALE-7KQ2PX",
                    "discount_percentage": 20,
                    "discount_amount": 0,
                    "usage_count": 1,
                    "usage_by": "",
                    "products": [],
                    "expires_in": "2026-12-31",
                    "created": "2026-03-01",
                    "created_unix": 1772366400,
                    "pattern": "SALE-######",
                    "charset": "23456789ABCDEFGHJKMNPQRSTUVWXYZ",
                    "count": 10,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    id: int
    """The code's id."""
    code: str
    """The code."""
    discount_percentage: int | float
    """Percent off (0: none)."""
    discount_amount: int | float
    """Amount off (0: none)."""
    usage_count: Annotated[int, Field(description="uses left")]
    usage_by: Annotated[str, Field(description='"" when the code is not bound to anybody')]
    products: list[str]
    """The SKUs it applies to; none = all."""
    expires_in: Annotated[str, Field(description='YYYY-MM-DD, "" when it never expires')]
    created: str
    """The day it was made (YYYY-MM-DD)."""
    created_unix: int
    """When it was made (Unix seconds)."""
    pattern: str
    """The pattern it was drawn from."""
    charset: str
    """The characters drawn from."""
    count: int
    """How many codes its generation made."""


def seed_promocode(found: Promocode) -> SeedPromocode:
    g = found.generation
    return SeedPromocode(
        id=found.id,
        code=found.code,
        discount_percentage=number(g.discount_percentage),
        discount_amount=number(g.discount_amount),
        usage_count=found.usage_count,
        usage_by=g.usage_by or "",
        products=list(g.products),
        expires_in=g.expires_in.isoformat() if g.expires_in else "",
        created=g.created_at.date().isoformat(),
        created_unix=int(g.created_at.timestamp()),
        pattern=g.pattern,
        charset=g.charset,
        count=g.count,
    )


class Message(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    message: str
    """What was done, for a person."""
    status: int
    """200."""


# --- sign-in -----------------------------------------------------------------------------------


class PromosSignIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"login": "admin", "password": "a long password"}]},
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    login: Lookup
    """The user name."""
    password: Secret
    """The password."""
    otp: Annotated[str, Field(min_length=1, max_length=64, pattern=STORABLE)] | None = None
    """Promos' addition: a user with two-factor sign-in sends a current code (or a recovery
    code) here; without it, 401 "second_factor_required"."""


class TokenBody(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    token: str
    """The bearer token."""


class Identity(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The user's or key's id."""
    login: str
    """The user name or the key's name."""
    role: Annotated[Literal["ADMIN", "SALES"], Field(description="the seed's role names")]


_WRONG_CREDENTIAL: dict[int | str, dict[str, Any]] = {
    401: {"model": PromosErrorBody, "description": "wrong login or password, or a bad token"}
}


@both("POST", "/signin", responses={**_LIMITED, **_WRONG_CREDENTIAL})
async def signin(request: Request, body: PromosSignIn, state: State) -> TokenBody:
    """Exchange a login and password for a bearer token (failed attempts are rate limited)."""
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=body.login)
    async with attempt, state.database.begin() as conn:
        issued = await auth_service.sign_in(
            conn,
            username=body.login,
            password=body.password,
            otp=body.otp,
            ttl=timedelta(seconds=state.settings.token_ttl_seconds),
            now=state.clock(),
        )
    return TokenBody(token=issued.token)


class AuthenticateIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": "pt_Kq0c7n3YV1xH2m9dR4tW8zB6aE5fJ0sL1pU3gN7iO2c"}]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    token: Secret
    """The token to check (else the Authorization header's)."""


def identity(principal: Principal) -> Identity:
    role: Literal["ADMIN", "SALES"] = "ADMIN" if principal.is_admin else "SALES"
    return Identity(id=principal.id, login=principal.name, role=role)


@both("GET", "/authenticate", dependencies=[OWN])
async def authenticate(principal: CurrentPrincipal) -> Identity:
    """Who the token (``Authorization: Bearer``) belongs to."""
    return identity(principal)


@both("POST", "/authenticate", responses=_WRONG_CREDENTIAL)
async def authenticate_token(
    request: Request,
    state: State,
    body: AuthenticateIn | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Identity:
    """Who the token belongs to: ``{"token"}`` in the body, or ``Authorization: Bearer``."""
    credential = f"Bearer {body.token}" if body is not None else authorization
    return identity(
        await state.authenticator.authenticate(credential, route=route_of(request.scope))
    )


# --- promo codes -------------------------------------------------------------------------------


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class SetIn(BaseModel):
    """The seed's ``promocodes/set`` body; a discount of 0 means "not this one"."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pattern": "SALE-######",
                    "count": 10,
                    "discount_percentage": 20,
                    "usage_count": 1,
                    "expires_in": "2026-12-31",
                    "products": [],
                    "usage_by": "",
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    discount_percentage: Money = Decimal(0)
    """Percent off (0: not this kind)."""
    discount_amount: Money = Decimal(0)
    """Amount off (0: not this kind)."""
    usage_count: Annotated[int, Field(ge=1, le=promocodes.MAX_USAGE_COUNT)] = 1
    """Uses per code."""
    charset: Annotated[str, Field(min_length=1, max_length=62, pattern=STORABLE)] = DEFAULT_CHARSET
    """The characters `#` is drawn from."""
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    """How many codes."""
    expires_in: Annotated[Day | None, BeforeValidator(_blank_is_none)] = None
    """The last day they work (YYYY-MM-DD; "": never)."""
    pattern: Annotated[str, Field(min_length=1, max_length=MAX_CODE_LENGTH, pattern=STORABLE)]
    """`#` is drawn from charset; anything else is literal."""
    products: Annotated[list[Sku], Field(max_length=promocodes.MAX_PRODUCTS)] = []
    """The SKUs they apply to; none = all."""
    usage_by: Annotated[Email | None, BeforeValidator(_blank_is_none)] = None
    """The one customer allowed (an e-mail; "" or null: anybody)."""

    def to_spec(self) -> GenerationSpec:
        return GenerationSpec(
            pattern=self.pattern,
            charset=self.charset,
            count=self.count,
            discount_percentage=self.discount_percentage or None,
            discount_amount=self.discount_amount or None,
            usage_count=self.usage_count,
            expires_in=self.expires_in,
            products=tuple(self.products),
            usage_by=self.usage_by,
        )


@both("POST", "/promocodes/set", dependencies=[needs("promocodes", "manage")])
async def set_promocodes(body: SetIn, state: State, principal: CurrentPrincipal) -> Message:
    """Generate ``count`` codes from ``pattern`` and ``charset`` (all, or none)."""
    made = await promocode_changes.generate_apart(
        state.database, actor=principal, spec=body.to_spec(), now=state.clock()
    )
    names = ", ".join(made.codes[:100])
    if made.generation.count > 100:  # noqa: PLR2004 - the message names the first 100
        names += f" and {made.generation.count - 100} more"
    return Message(message=f"Promocode {names} created.", status=200)


async def _listing(
    state: State, filters: PromocodeFilter, *, limit: int = MAX_ROWS, offset: int = 0
) -> list[SeedPromocode]:
    async with state.database.begin() as conn:
        found = await promocodes.list_promocodes(conn, filters=filters, limit=limit, offset=offset)
    return [seed_promocode(p) for p in found]


Search = Annotated[Lookup, Path(description="part of the code")]
LimitIn = Annotated[int, Path(ge=0, le=1_000_000_000, description="from (0 = the first)")]
LimitOut = Annotated[int, Path(ge=0, le=1_000_000_000, description="to (exclusive)")]


def _window(limitin: int, limitout: int) -> tuple[int, int]:
    if limitout < limitin:
        raise InvalidInput("limitout must not be less than limitin")
    if limitout - limitin > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} codes at once (limitout - limitin)")
    return limitout - limitin, limitin


@both("GET", "/promocodes/get", dependencies=[needs("promocodes", "read")])
async def get_all(state: State, _: CurrentPrincipal) -> list[SeedPromocode]:
    """Every promo code (the first 100,000), oldest first."""
    return await _listing(state, PromocodeFilter())


@both("GET", "/promocodes/get/{search}", dependencies=[needs("promocodes", "read")])
async def get_search(search: Search, state: State, _: CurrentPrincipal) -> list[SeedPromocode]:
    """The codes that contain ``search`` (case-insensitive)."""
    return await _listing(state, PromocodeFilter(search=search))


@both("GET", "/promocodes/get/{limitin}/{limitout}", dependencies=[needs("promocodes", "read")])
async def get_limited(
    limitin: LimitIn, limitout: LimitOut, state: State, _: CurrentPrincipal
) -> list[SeedPromocode]:
    """Codes number ``limitin`` (from 0) up to, not including, ``limitout``."""
    limit, offset = _window(limitin, limitout)
    return await _listing(state, PromocodeFilter(), limit=limit, offset=offset)


@both(
    "GET",
    "/promocodes/get/{search}/{limitin}/{limitout}",
    dependencies=[needs("promocodes", "read")],
)
async def get_search_limited(
    search: Search, limitin: LimitIn, limitout: LimitOut, state: State, _: CurrentPrincipal
) -> list[SeedPromocode]:
    limit, offset = _window(limitin, limitout)
    return await _listing(state, PromocodeFilter(search=search), limit=limit, offset=offset)


@both("GET", "/promocodes/getusedby", dependencies=[needs("promocodes", "read")])
async def get_used_by(
    state: State,
    principal: CurrentPrincipal,
    email: Annotated[
        Lookup | None, Query(description="the bound e-mail; default: the caller's login")
    ] = None,
) -> list[SeedPromocode]:
    """The codes bound to an e-mail."""
    return await _listing(state, PromocodeFilter(usage_by=email or principal.name))


@both("GET", "/promocodes/getdiscountpercentage", dependencies=[needs("promocodes", "read")])
async def get_discount_percentage(state: State, _: CurrentPrincipal) -> list[SeedPromocode]:
    """The codes with a percentage discount."""
    return await _listing(state, PromocodeFilter(kind="percentage"))


@both("GET", "/promocodes/del/{id}", dependencies=[needs("promocodes", "manage")])
async def delete_code(
    code: Annotated[Lookup, Path(alias="id")],
    state: State,
    principal: CurrentPrincipal,
) -> Message:
    """Delete the promo code ``{id}`` (the code itself, e.g. SUMMER21)."""
    async with state.database.begin() as conn:
        await promocode_changes.delete_promocode(
            conn, actor=principal, code=code, now=state.clock()
        )
    return Message(message="Promocodes deleted.", status=200)


@both("GET", "/promocodes/getbycode/{id}", dependencies=[PublicLimit], responses=_LIMITED)
async def get_by_code(
    code: Annotated[str, Path(alias="id", min_length=1)], state: State
) -> SeedPromocode:
    """Public: a usable code (not expired, uses left); one answer for unknown and unusable.

    Malformed codes (too long, control characters) get that same answer, not a validation
    error, so that nothing tells a guessed code apart from a code that does not exist.
    """
    if len(code) > MAX_CODE_LENGTH or has_control_character(code):
        raise PromocodeNotFound(NOT_VALID)
    now = state.clock()
    async with state.database.begin() as conn:
        try:
            found = await promocodes.get_promocode(conn, code, now=now)
        except PromocodeNotFound:
            raise PromocodeNotFound(NOT_VALID) from None
    expired = found.expires_in is not None and found.expires_in < now.date()
    if expired or found.usage_count <= 0:
        raise PromocodeNotFound(NOT_VALID)
    return seed_promocode(found)


@both("GET", "/promocodes/decrement/{id}", dependencies=[needs("promocodes", "use")])
async def decrement(
    code: Annotated[Lookup, Path(alias="id")],
    state: State,
    _: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> Message:
    """Use one use of the code (it never goes below zero, under any concurrency)."""
    async with state.database.begin() as conn:
        await promocodes.redeem(
            conn,
            code=code,
            customer=None,
            skus=None,
            now=state.clock(),
            idempotency_key=idempotency_key,
        )
    return Message(message=f"Promocode {code} decremented.", status=200)


# --- specials and upgrades ---------------------------------------------------------------------

Module = Annotated[
    Literal["specials", "upgrades"], Query(description="specials or upgrades, as in the seed")
]
SeedNumber = Annotated[int | float | None, Field(description="a JSON number; null for none")]
SeedTime = Annotated[str | None, Field(description="ISO 8601 with the offset; null = open")]


class _SeedCatalogItem(BaseModel):
    """What specials and upgrade programs share, as the seed's CRUD shows them."""

    id: Annotated[int, Field(description="its id")]
    title: Annotated[str, Field(description="a title for people")]
    description: Annotated[str, Field(description="free text")]
    discount_percentage: Annotated[SeedNumber, Field(description="percent off, if that")]
    discount_amount: Annotated[SeedNumber, Field(description="amount off, if that")]
    starts_at: Annotated[SeedTime, Field(description="from when; null = already")]
    ends_at: Annotated[SeedTime, Field(description="until when; null = no end")]
    created_at: Annotated[str, Field(description="when it was made (ISO 8601)")]
    updated_at: Annotated[str, Field(description="when it last changed (ISO 8601)")]


class SeedSpecial(_SeedCatalogItem):
    """A special as the seed's CRUD shows it: numbers for money, ISO 8601 for times."""

    sku: Annotated[str, Field(description="the product on offer")]
    price: Annotated[SeedNumber, Field(description="the special price, if that is the offer")]


class SeedUpgradeProgram(_SeedCatalogItem):
    """An upgrade program as the seed's CRUD shows it."""

    from_sku: Annotated[str, Field(description="the product upgraded from")]
    to_sku: Annotated[str, Field(description="the product upgraded to")]


_ID = Annotated[Id, Field(description="what to replace")]


class SeedSpecialUpdate(SpecialIn):
    """The special named by ``id``, with every field anew."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": 1, "sku": "SKU-1", "title": "Half price", "discount_percentage": 50}
            ]
        }
    )

    id: _ID

    def to_spec(self) -> SpecialSpec:
        return SpecialSpec(**self.model_dump(exclude={"id"}))


class SeedUpgradeProgramUpdate(UpgradeProgramIn):
    """The upgrade program named by ``id``, with every field anew."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "from_sku": "SKU-BASIC",
                    "to_sku": "SKU-PRO",
                    "title": "Go pro",
                    "discount_amount": 20,
                }
            ]
        }
    )

    id: _ID

    def to_spec(self) -> UpgradeProgramSpec:
        return UpgradeProgramSpec(**self.model_dump(exclude={"id"}))


CrudBody = Annotated[
    SpecialIn | UpgradeProgramIn,
    Body(description="A special (module=specials) or an upgrade program (module=upgrades)"),
]
CrudUpdate = Annotated[
    SeedSpecialUpdate | SeedUpgradeProgramUpdate,
    Body(description="A special (module=specials) or an upgrade program (module=upgrades)"),
]


def _plain(item: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(item).items():
        if isinstance(value, Decimal):
            out[key] = number(value)
        elif isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def seed_special(item: catalog.Special) -> SeedSpecial:
    return SeedSpecial.model_validate(_plain(item))


def seed_upgrade(item: catalog.UpgradeProgram) -> SeedUpgradeProgram:
    return SeedUpgradeProgram.model_validate(_plain(item))


def _module_of(body: BaseModel) -> str:
    return "specials" if isinstance(body, SpecialIn) else "upgrades"


def _check_module(module: str, body: BaseModel) -> None:
    if _module_of(body) != module:
        wanted = "a special" if module == "specials" else "an upgrade program"
        raise InvalidOffer(f"module={module} takes {wanted}")


@router.get("/api/get", dependencies=[needs("catalog", "read")])
async def crud_list(
    module: Module, state: State, _: CurrentPrincipal
) -> list[SeedSpecial] | list[SeedUpgradeProgram]:
    """Every special, or every upgrade program."""
    async with state.database.begin() as conn:
        if module == "specials":
            found = await catalog.list_specials(conn, limit=MAX_ROWS)
            return [seed_special(s) for s in found.items]
        programs = await catalog.list_upgrade_programs(conn, limit=MAX_ROWS)
        return [seed_upgrade(p) for p in programs.items]


@router.post("/api/create", dependencies=[needs("catalog", "manage")])
async def crud_create(
    module: Module, body: CrudBody, state: State, principal: CurrentPrincipal
) -> SeedSpecial | SeedUpgradeProgram:
    """Make a special or an upgrade program."""
    _check_module(module, body)
    now = state.clock()
    async with state.database.begin() as conn:
        if isinstance(body, SpecialIn):
            return seed_special(
                await catalog_changes.create_special(
                    conn, actor=principal, spec=body.to_spec(), now=now
                )
            )
        return seed_upgrade(
            await catalog_changes.create_upgrade_program(
                conn, actor=principal, spec=body.to_spec(), now=now
            )
        )


@router.put("/api/update", dependencies=[needs("catalog", "manage")])
async def crud_update(
    module: Module, body: CrudUpdate, state: State, principal: CurrentPrincipal
) -> SeedSpecial | SeedUpgradeProgram:
    """Replace every field of the special or upgrade program named by ``id`` in the body."""
    _check_module(module, body)
    now = state.clock()
    async with state.database.begin() as conn:
        if isinstance(body, SeedSpecialUpdate):
            return seed_special(
                await catalog_changes.update_special(
                    conn, actor=principal, special_id=body.id, spec=body.to_spec(), now=now
                )
            )
        return seed_upgrade(
            await catalog_changes.update_upgrade_program(
                conn, actor=principal, program_id=body.id, spec=body.to_spec(), now=now
            )
        )


@router.get("/api/get/{id}", dependencies=[needs("catalog", "read")])
async def crud_get(
    item_id: Annotated[PathId, Path(alias="id")],
    module: Module,
    state: State,
    _: CurrentPrincipal,
) -> SeedSpecial | SeedUpgradeProgram:
    """One special, or one upgrade program."""
    async with state.database.begin() as conn:
        if module == "specials":
            return seed_special(await catalog.get_special(conn, item_id))
        return seed_upgrade(await catalog.get_upgrade_program(conn, item_id))


@router.delete("/api/delete/{id}", dependencies=[needs("catalog", "manage")])
async def crud_delete(
    item_id: Annotated[PathId, Path(alias="id")],
    module: Module,
    state: State,
    principal: CurrentPrincipal,
) -> Message:
    """Delete a special, or an upgrade program."""
    now = state.clock()
    async with state.database.begin() as conn:
        if module == "specials":
            await catalog_changes.delete_special(conn, actor=principal, special_id=item_id, now=now)
            return Message(message=f"Special {item_id} deleted.", status=200)
        await catalog_changes.delete_upgrade_program(
            conn, actor=principal, program_id=item_id, now=now
        )
    return Message(message=f"Upgrade program {item_id} deleted.", status=200)


@both("GET", "/special/{sku}", dependencies=[PublicLimit], responses=_LIMITED)
async def special_by_sku(sku: Annotated[Lookup, Path()], state: State) -> SeedSpecial:
    """Public: the special of the SKU active now."""
    async with state.database.begin() as conn:
        return seed_special(await catalog.active_special(conn, sku=sku, now=state.clock()))


@both("GET", "/upgrade-program", dependencies=[PublicLimit], responses=_LIMITED)
async def actual_upgrade_programs(state: State) -> list[SeedUpgradeProgram]:
    """Public: the upgrade programs active now."""
    async with state.database.begin() as conn:
        found = await catalog.active_upgrade_programs(conn, now=state.clock())
    return [seed_upgrade(p) for p in found]


class UpgradeCodeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "upgrade_program_id": 1,
                    "usage_by": "customer@example.com",
                    "usage_count": 1,
                    "expires_in": "2026-12-31",
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    upgrade_program_id: Id
    """The active upgrade program."""
    usage_by: Annotated[Email | None, BeforeValidator(_blank_is_none)] = None
    """The one customer allowed (an e-mail; "" or null: anybody)."""
    usage_count: Annotated[int, Field(ge=1, le=promocodes.MAX_USAGE_COUNT)] = 1
    """Uses of the code."""
    expires_in: Annotated[Day | None, BeforeValidator(_blank_is_none)] = None
    """Its last day (default: the program's)."""


@both("POST", "/promocode/upgrade-program", dependencies=[needs("promocodes", "manage")])
async def upgrade_program_code(
    body: UpgradeCodeIn, state: State, principal: CurrentPrincipal
) -> SeedPromocode:
    """A promo code for an active upgrade program: its discount, on its ``to_sku``.

    It expires on ``expires_in``, or else on the last day of the program (if it ends).
    """
    now = state.clock()
    async with state.database.begin() as conn:
        program = await catalog.get_upgrade_program(conn, body.upgrade_program_id)
        active = await catalog.active_upgrade_programs(conn, now=now)
        if program.id not in {p.id for p in active}:
            raise InvalidOffer(f"upgrade program {program.id} is not active now")
        ends = program.ends_at.date() if program.ends_at is not None else None
        made = await promocode_changes.generate(
            conn,
            actor=principal,
            spec=GenerationSpec(
                pattern=UPGRADE_PATTERN,
                count=1,
                usage_count=body.usage_count,
                discount_percentage=program.discount_percentage,
                discount_amount=program.discount_amount,
                expires_in=body.expires_in or ends,
                products=(program.to_sku,),
                usage_by=body.usage_by,
            ),
            now=now,
        )
        found = await promocodes.get_promocode(conn, made.codes[0])
    return seed_promocode(found)


# What answers before any route runs (a body over the limit, a 500) answers in this shape too.
ERROR_SHAPES: dict[str, ErrorShape] = {
    route.path: promos_body for route in router.routes if isinstance(route, APIRoute)
}
