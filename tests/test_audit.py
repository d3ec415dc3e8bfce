"""The audit log: every change made through a management route, queryable at ``/v1/audit``.

The routes are derived from the app: each route with a write method (and the seeds' GET
routes that write) either has a case below that makes its change and finds its audit row,
or is in ``OPERATIONAL`` with the reason it is not audited. A new route with neither fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from promos.app import create_app
from promos.audit import service as audit
from promos.audit.tables import audit_log
from promos.auth import service as auth_service
from promos.auth import twofactor
from promos.auth.tables import api_keys, tokens, users
from promos.brands import service as brands
from promos.brands.tables import brand_users
from promos.catalog import service as catalog
from promos.db import Database
from promos.events import service as events
from promos.promocodes import service as promocodes
from promos.settings import Settings
from tests._receiver import ALLOWED_HOSTS
from tests._routes import app_routes
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.factories.auth import make_api_key, make_user
from tests.factories.catalog import make_special, make_upgrade_program
from tests.factories.codes import CLIENT, make_batch
from tests.factories.offers import make_game, make_offer, offer_fields
from tests.factories.promocodes import make_promocode
from tests.factories.referrals import make_program

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks made here point at the loopback (where nothing listens)."""
    return settings.model_copy(update={"webhook_allowed_hosts": ALLOWED_HOSTS})


# The seeds' GET routes that change something: a method cannot tell them apart.
WRITING_GETS = {
    ("GET", "/promocodes/del/{id}"),
    ("GET", "/api/promocodes/del/{id}"),
    ("GET", "/promocodes/decrement/{id}"),
    ("GET", "/api/promocodes/decrement/{id}"),
    ("GET", "/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}"),
}

_SIGN_IN = "sign-in: authentication, not configuration (rate limited, in the metrics and logs)"
_READS = "changes nothing: it only reads"
_ISSUE = "issuing a pool code to a customer: the code row keeps who and when, and code.issued"
_CHECKOUT = "checkout traffic on a promo code: the redemptions table keeps each use"
_RETURN = "checkout traffic on a promo code: the returns table keeps each return and its end"
_HOLD = "checkout traffic on a promo code: the holds table keeps each hold and its end"
_POOL_HOLD = "checkout traffic on a pool code: pool_code_holds keeps each hold and its end"
_PLAYER = "players' traffic: the claim and impression rows keep each one"
_SIGN_UP = "a referred sign-up: the credits ledger and referral.signed_up keep it"
_INVOICE = "a customer's invoice: the credits ledger and referral.rewarded keep it"
_INVITE = "a referrer's invitations: email_indications keeps who indicated each address and when"

# Operational routes: high volume, recorded by their own rows, outbox events and metrics.
OPERATIONAL = {
    ("POST", "/v1/auth/tokens"): _SIGN_IN,
    ("POST", "/signin"): _SIGN_IN,
    ("POST", "/api/signin"): _SIGN_IN,
    ("POST", "/authenticate"): _READS,
    ("POST", "/api/authenticate"): _READS,
    ("POST", "/emailverification"): _READS,
    ("POST", "/emailverification/"): _READS,
    ("POST", "/v1/promocodes/{code}/validate"): _READS,
    ("POST", "/v1/games/{game_id}/offer-explanations"): _READS,
    ("POST", "/v1/batches/{batch_id}/issues"): _ISSUE,
    ("POST", "/api/v1/code/redeem"): _ISSUE,
    ("GET", "/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}"): _ISSUE,
    ("POST", "/v1/promocodes/{code}/redeem"): _CHECKOUT,
    ("POST", "/v1/redemptions/{redemption_id}/rollback"): _CHECKOUT,
    ("POST", "/v1/redemptions/{redemption_id}/returns"): _RETURN,
    ("POST", "/v1/promocode-orders/{order}/returns"): _RETURN,
    ("POST", "/v1/promocodes/{code}/holds"): _HOLD,
    ("POST", "/v1/promocode-holds/{hold_id}/confirm"): _HOLD,
    ("POST", "/v1/promocode-holds/{hold_id}/release"): _HOLD,
    ("POST", "/v1/promocode-orders/{order}/cancel"): _HOLD,
    ("POST", "/v1/batches/{batch_id}/holds"): _POOL_HOLD,
    ("POST", "/v1/pool-code-holds/{hold_id}/confirm"): _POOL_HOLD,
    ("POST", "/v1/pool-code-holds/{hold_id}/release"): _POOL_HOLD,
    ("GET", "/promocodes/decrement/{id}"): _CHECKOUT,
    ("GET", "/api/promocodes/decrement/{id}"): _CHECKOUT,
    ("PUT", "/offers/claim"): _PLAYER,
    ("PUT", "/offers/{offer_id}/impressions"): _PLAYER,
    ("POST", "/v1/referrals"): _SIGN_UP,
    ("POST", "/register"): _SIGN_UP,
    ("POST", "/register/"): _SIGN_UP,
    ("PUT", "/v1/referral-users/{user_hash}/payments"): _INVOICE,
    ("PUT", "/invoice/user/{user_hash}"): _INVOICE,
    ("PUT", "/invoice/user/{user_hash}/"): _INVOICE,
    ("POST", "/v1/referrals/payments/{user_hash}/refunds"): (
        "a customer's refund: the credits ledger (voided, clawback) and referral.reward_reversed"
        " keep it"
    ),
    ("POST", "/emailindication"): _INVITE,
    ("POST", "/emailindication/"): _INVITE,
}


def _served() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    # The console's pages change things through the same helpers (each domain's changes.py):
    # tests/console checks the audit row of each of its forms.
    return {
        route
        for route in app_routes(app)
        if route[0] in WRITE_METHODS and not route[1].startswith("/admin")
    } | WRITING_GETS


SERVED = _served()


# --- the cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    client: httpx.AsyncClient
    database: Database
    clock: FakeClock
    admin: dict[str, str]


@dataclass(frozen=True)
class Expected:
    """The audit row a change must leave; ``before``/``after`` name fields it must hold."""

    action: str
    target_type: str
    target_id: str | int
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


# A case makes the change through the route (its path template given) and names the row.
Case = Callable[[Ctx, str], Awaitable[Expected]]
CASES: dict[tuple[str, str], list[Case]] = {}


def case(method: str, *paths: str) -> Callable[[Case], Case]:
    """Register a case for each of the paths (a route served at several paths)."""

    def register(fn: Case) -> Case:
        for path in paths:
            CASES.setdefault((method, path), []).append(fn)
        return fn

    return register


async def ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def fill(path: str, **values: object) -> str:
    """The path template with its parameters filled in."""
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    return path


SPECIAL = {"sku": "SKU12345", "title": "Summer special", "price": "9.99"}
UPGRADE = {
    "from_sku": "SKU12345",
    "to_sku": "SKU67890",
    "title": "Go pro",
    "discount_percentage": 15,
}


# users, API keys, tokens


@case("POST", "/v1/users")
async def create_user(ctx: Ctx, path: str) -> Expected:
    body = {"username": "ursula", "password": "a long password", "role": "sales"}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    after = {"username": "ursula", "role": "sales", "disabled": False}
    return Expected("user.create", "user", made["id"], after=after)


@case("DELETE", "/v1/users/{user_id}")
async def disable_user(ctx: Ctx, path: str) -> Expected:
    user = await make_user(ctx.database, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, user_id=user.id), headers=ctx.admin))
    return Expected(
        "user.disable", "user", user.id, before={"disabled": False}, after={"disabled": True}
    )


@case("PUT", "/v1/users/{user_id}/password")
async def reset_password(ctx: Ctx, path: str) -> Expected:
    user = await make_user(ctx.database, now=ctx.clock())
    body = {"password": "a new long password"}
    await ok(await ctx.client.put(fill(path, user_id=user.id), json=body, headers=ctx.admin))
    after = {"username": user.username, "tokens_revoked": 0}
    return Expected("user.password_reset", "user", user.id, after=after)


@case("PUT", "/v1/auth/password")
async def change_own_password(ctx: Ctx, path: str) -> Expected:
    signed_in = await ok(
        await ctx.client.post("/v1/auth/tokens", json={"login": "root", "password": ADMIN_PASSWORD})
    )
    bearer = {"Authorization": f"Bearer {signed_in['token']}"}
    # There and back, with the token the change keeps: the case's admin header still works.
    for current, new in (
        (ADMIN_PASSWORD, "an interim password"),
        ("an interim password", ADMIN_PASSWORD),
    ):
        body = {"current_password": current, "new_password": new}
        await ok(await ctx.client.put(path, json=body, headers=bearer))
    after = {"username": "root", "tokens_revoked": 0}
    return Expected("user.password_change", "user", signed_in["user"]["id"], after=after)


@case("POST", "/v1/api-keys")
async def create_api_key(ctx: Ctx, path: str) -> Expected:
    body = {"name": "shop", "role": "sales"}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    return Expected("api_key.create", "api_key", made["id"], after={"name": "shop"})


@case("DELETE", "/v1/api-keys/{key_id}")
async def revoke_api_key(ctx: Ctx, path: str) -> Expected:
    async with ctx.database.begin() as conn:
        new = await auth_service.create_api_key(conn, name="shop", role="sales", now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, key_id=new.key.id), headers=ctx.admin))
    return Expected(
        "api_key.revoke", "api_key", new.key.id, before={"revoked": False}, after={"revoked": True}
    )


@case("POST", "/v1/api-keys/{key_id}/rotate")
async def rotate_api_key(ctx: Ctx, path: str) -> Expected:
    async with ctx.database.begin() as conn:
        new = await auth_service.create_api_key(conn, name="shop", role="sales", now=ctx.clock())
    body = {"grace_seconds": 3600}
    made = await ok(
        await ctx.client.post(fill(path, key_id=new.key.id), json=body, headers=ctx.admin)
    )
    before, after = {"prefix": new.key.prefix}, {"prefix": made["prefix"], "grace_seconds": 3600}
    return Expected("api_key.rotate", "api_key", new.key.id, before=before, after=after)


@case("DELETE", "/v1/auth/tokens/current")
async def sign_out(ctx: Ctx, path: str) -> Expected:
    signed_in = await ok(
        await ctx.client.post("/v1/auth/tokens", json={"login": "root", "password": ADMIN_PASSWORD})
    )
    bearer = {"Authorization": f"Bearer {signed_in['token']}"}
    await ok(await ctx.client.delete(path, headers=bearer))
    async with ctx.database.begin() as conn:
        [token_id] = (
            await conn.execute(select(tokens.c.id).where(tokens.c.revoked_at.is_not(None)))
        ).scalars()
    return Expected("token.revoke", "token", token_id)


# two-factor sign-in


async def _root_token(ctx: Ctx) -> dict[str, str]:
    signed_in = await ok(
        await ctx.client.post("/v1/auth/tokens", json={"login": "root", "password": ADMIN_PASSWORD})
    )
    return {"Authorization": f"Bearer {signed_in['token']}"}


async def _root_enrolled(ctx: Ctx) -> dict[str, str]:
    """Root with two-factor sign-in on; the case's admin header becomes root's token, since
    HTTP Basic is refused for a user who has a second factor."""
    bearer = await _root_token(ctx)
    started = await ok(await ctx.client.post("/v1/auth/two-factor", headers=bearer))
    otp = pyotp.TOTP(started["secret"]).at(ctx.clock())
    confirm = "/v1/auth/two-factor/confirm"
    await ok(await ctx.client.post(confirm, json={"otp": otp}, headers=bearer))
    ctx.admin.update(bearer)
    return bearer


@case("POST", "/v1/auth/two-factor")
async def start_two_factor(ctx: Ctx, path: str) -> Expected:
    await ok(await ctx.client.post(path, headers=await _root_token(ctx)))
    return Expected(
        "user.two_factor_start", "user", await _root_id(ctx.database), after={"username": "root"}
    )


@case("POST", "/v1/auth/two-factor/confirm")
async def confirm_two_factor(ctx: Ctx, path: str) -> Expected:
    await _root_enrolled(ctx)
    after = {"username": "root", "recovery_codes": 10}
    return Expected("user.two_factor_enable", "user", await _root_id(ctx.database), after=after)


@case("POST", "/v1/auth/two-factor/disable")
async def disable_two_factor(ctx: Ctx, path: str) -> Expected:
    bearer = await _root_enrolled(ctx)
    await ok(await ctx.client.post(path, json={"password": ADMIN_PASSWORD}, headers=bearer))
    after = {"username": "root", "proof": "password"}
    return Expected("user.two_factor_disable", "user", await _root_id(ctx.database), after=after)


@case("DELETE", "/v1/users/{user_id}/two-factor")
async def reset_two_factor(ctx: Ctx, path: str) -> Expected:
    user = await make_user(ctx.database, now=ctx.clock())
    now = ctx.clock()
    async with ctx.database.begin() as conn:
        started = await twofactor.start(conn, user_id=user.id, username=user.username, now=now)
        otp = pyotp.TOTP(started.secret).at(now)
        await twofactor.confirm(conn, user_id=user.id, otp=otp, now=now)
    await ok(await ctx.client.delete(fill(path, user_id=user.id), headers=ctx.admin))
    return Expected(
        "user.two_factor_reset",
        "user",
        user.id,
        before={"two_factor": True},
        after={"two_factor": False},
    )


@case("PUT", "/v1/auth/settings")
async def require_two_factor(ctx: Ctx, path: str) -> Expected:
    bearer = await _root_enrolled(ctx)
    body = {"require_two_factor_for_admins": True}
    await ok(await ctx.client.put(path, json=body, headers=bearer))
    return Expected(
        "auth_settings.update",
        "auth_settings",
        "require_two_factor_for_admins",
        before={"require_two_factor_for_admins": False},
        after=body,
    )


# code pools


@case("POST", "/v1/batches")
async def create_batch(ctx: Ctx, path: str) -> Expected:
    body = {"client_id": str(CLIENT), "name": "Summer Sale"}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    return Expected("batch.create", "batch", made["id"], after={"name": "Summer Sale"})


@case("POST", "/v1/batches/{batch_id}/expire")
async def expire_batch(ctx: Ctx, path: str) -> Expected:
    batch = await make_batch(ctx.database, now=ctx.clock())
    await ok(await ctx.client.post(fill(path, batch_id=batch.id), headers=ctx.admin))
    return Expected(
        "batch.expire", "batch", str(batch.id), before={"expired": False}, after={"expired": True}
    )


@case("PUT", "/v1/batches/{batch_id}/hold-settings")
async def set_hold_settings(ctx: Ctx, path: str) -> Expected:
    batch = await make_batch(ctx.database, now=ctx.clock())
    body = {"released_codes": "return"}
    await ok(await ctx.client.put(fill(path, batch_id=batch.id), json=body, headers=ctx.admin))
    return Expected(
        "batch.hold_settings",
        "batch",
        str(batch.id),
        before={"return_released_codes": False},
        after={"return_released_codes": True},
    )


@case("POST", "/v1/batches/{batch_id}/codes")
async def add_codes(ctx: Ctx, path: str) -> Expected:
    batch = await make_batch(ctx.database, now=ctx.clock(), codes=0)
    files = {"file": ("codes.csv", b"code\nA-1\nA-2\n", "text/csv")}
    await ok(await ctx.client.post(fill(path, batch_id=batch.id), files=files, headers=ctx.admin))
    return Expected("batch.codes_add", "batch", str(batch.id), after={"added": 2})


@case("POST", "/api/v1/codes/upload")
async def ango_upload(ctx: Ctx, path: str) -> Expected:
    files = {"file": ("codes.csv", f"client_id,code\n{CLIENT},S-1\n".encode(), "text/csv")}
    made = await ok(
        await ctx.client.post(path, files=files, data={"batch_name": "Sale"}, headers=ctx.admin)
    )
    return Expected("batch.import", "batch", made["batch_id"], after={"added": 1})


@case("POST", "/discounts/api/v1.0/generate")
async def brand_generate(ctx: Ctx, path: str) -> Expected:
    body = {"brand_id": 7, "number_of_codes": 3}
    await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    return Expected("brand.generate", "brand", 7, after={"added": 3})


# brand users


@case("POST", "/v1/brand-users")
async def create_brand_user(ctx: Ctx, path: str) -> Expected:
    body = {"user_id": "u-1"}
    await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    return Expected("brand_user.create", "brand_user", "u-1", after={"user_id": "u-1"})


@case("DELETE", "/v1/brand-users/{user_id}")
async def delete_brand_user(ctx: Ctx, path: str) -> Expected:
    async with ctx.database.begin() as conn:
        await brands.create_brand_user(conn, user_id="u-1", secret=None, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, user_id="u-1"), headers=ctx.admin))
    return Expected("brand_user.delete", "brand_user", "u-1", before={"user_id": "u-1"})


# promo codes


@case("POST", "/v1/promocodes")
async def generate_promocodes(ctx: Ctx, path: str) -> Expected:
    body = {"pattern": "SALE-####", "count": 2, "discount_percentage": 10}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    generation = made["generation"]["id"]
    after = {"pattern": "SALE-####", "count": 2, "discount_percentage": Decimal(10)}
    return Expected("promocode_generation.create", "promocode_generation", generation, after=after)


@case("POST", "/promocodes/set", "/api/promocodes/set")
async def set_promocodes(ctx: Ctx, path: str) -> Expected:
    body = {"pattern": "SET-####", "count": 2, "discount_amount": 5}
    await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    async with ctx.database.begin() as conn:
        [made, _] = await promocodes.list_promocodes(conn)
    after = {"pattern": "SET-####", "count": 2, "discount_amount": Decimal(5)}
    return Expected(
        "promocode_generation.create", "promocode_generation", made.generation.id, after=after
    )


@case("POST", "/promocode/upgrade-program", "/api/promocode/upgrade-program")
async def upgrade_program_code(ctx: Ctx, path: str) -> Expected:
    program = await make_upgrade_program(ctx.database, now=ctx.clock())
    body = {"upgrade_program_id": program.id}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    async with ctx.database.begin() as conn:
        generation = (await promocodes.get_promocode(conn, made["code"])).generation
    after = {"pattern": "UP-##########", "products": ["SKU67890"]}
    return Expected(
        "promocode_generation.create", "promocode_generation", generation.id, after=after
    )


@case("PATCH", "/v1/promocodes/{code}")
async def set_cancel_policy(ctx: Ctx, path: str) -> Expected:
    code = await make_promocode(ctx.database, now=ctx.clock())
    body = {"reusable_after_cancel": False}
    await ok(await ctx.client.patch(fill(path, code=code), json=body, headers=ctx.admin))
    return Expected(
        "promocode.update",
        "promocode",
        code,
        before={"own_reusable_after_cancel": None},
        after={"own_reusable_after_cancel": False},
    )


@case("DELETE", "/v1/promocodes/{code}")
async def delete_promocode(ctx: Ctx, path: str) -> Expected:
    code = await make_promocode(ctx.database, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, code=code), headers=ctx.admin))
    return Expected("promocode.delete", "promocode", code, before={"code": code, "usage_count": 3})


@case("GET", "/promocodes/del/{id}", "/api/promocodes/del/{id}")
async def seed_delete_promocode(ctx: Ctx, path: str) -> Expected:
    code = await make_promocode(ctx.database, now=ctx.clock())
    await ok(await ctx.client.get(fill(path, id=code), headers=ctx.admin))
    return Expected("promocode.delete", "promocode", code, before={"code": code})


# specials and upgrade programs


@case("POST", "/v1/specials")
async def create_special(ctx: Ctx, path: str) -> Expected:
    made = await ok(await ctx.client.post(path, json=SPECIAL, headers=ctx.admin))
    return Expected("special.create", "special", made["id"], after={"price": Decimal("9.99")})


@case("PUT", "/v1/specials/{special_id}")
async def update_special(ctx: Ctx, path: str) -> Expected:
    special = await make_special(ctx.database, now=ctx.clock())
    body = {**SPECIAL, "title": "Winter special"}
    await ok(await ctx.client.put(fill(path, special_id=special.id), json=body, headers=ctx.admin))
    return Expected(
        "special.update",
        "special",
        special.id,
        before={"title": "Summer special"},
        after={"title": "Winter special"},
    )


@case("DELETE", "/v1/specials/{special_id}")
async def delete_special(ctx: Ctx, path: str) -> Expected:
    special = await make_special(ctx.database, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, special_id=special.id), headers=ctx.admin))
    return Expected("special.delete", "special", special.id, before={"sku": "SKU12345"})


@case("POST", "/v1/upgrade-programs")
async def create_upgrade_program(ctx: Ctx, path: str) -> Expected:
    made = await ok(await ctx.client.post(path, json=UPGRADE, headers=ctx.admin))
    return Expected(
        "upgrade_program.create", "upgrade_program", made["id"], after={"title": "Go pro"}
    )


@case("PUT", "/v1/upgrade-programs/{program_id}")
async def update_upgrade_program(ctx: Ctx, path: str) -> Expected:
    program = await make_upgrade_program(ctx.database, now=ctx.clock())
    body = {**UPGRADE, "title": "Go max"}
    await ok(await ctx.client.put(fill(path, program_id=program.id), json=body, headers=ctx.admin))
    return Expected(
        "upgrade_program.update",
        "upgrade_program",
        program.id,
        before={"title": "Go pro"},
        after={"title": "Go max"},
    )


@case("DELETE", "/v1/upgrade-programs/{program_id}")
async def delete_upgrade_program(ctx: Ctx, path: str) -> Expected:
    program = await make_upgrade_program(ctx.database, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, program_id=program.id), headers=ctx.admin))
    return Expected(
        "upgrade_program.delete", "upgrade_program", program.id, before={"title": "Go pro"}
    )


@case("POST", "/api/create")
async def seed_create_special(ctx: Ctx, path: str) -> Expected:
    made = await ok(
        await ctx.client.post(path, params={"module": "specials"}, json=SPECIAL, headers=ctx.admin)
    )
    return Expected("special.create", "special", made["id"], after={"sku": "SKU12345"})


@case("POST", "/api/create")
async def seed_create_upgrade_program(ctx: Ctx, path: str) -> Expected:
    made = await ok(
        await ctx.client.post(path, params={"module": "upgrades"}, json=UPGRADE, headers=ctx.admin)
    )
    return Expected(
        "upgrade_program.create", "upgrade_program", made["id"], after={"title": "Go pro"}
    )


@case("PUT", "/api/update")
async def seed_update_special(ctx: Ctx, path: str) -> Expected:
    special = await make_special(ctx.database, now=ctx.clock())
    body = {**SPECIAL, "id": special.id, "price": "7.50"}
    await ok(
        await ctx.client.put(path, params={"module": "specials"}, json=body, headers=ctx.admin)
    )
    return Expected(
        "special.update",
        "special",
        special.id,
        before={"price": Decimal("9.99")},
        after={"price": Decimal("7.5")},
    )


@case("PUT", "/api/update")
async def seed_update_upgrade_program(ctx: Ctx, path: str) -> Expected:
    program = await make_upgrade_program(ctx.database, now=ctx.clock())
    body = {**UPGRADE, "id": program.id, "title": "Go max"}
    await ok(
        await ctx.client.put(path, params={"module": "upgrades"}, json=body, headers=ctx.admin)
    )
    return Expected(
        "upgrade_program.update",
        "upgrade_program",
        program.id,
        before={"title": "Go pro"},
        after={"title": "Go max"},
    )


@case("DELETE", "/api/delete/{id}")
async def seed_delete_special(ctx: Ctx, path: str) -> Expected:
    special = await make_special(ctx.database, now=ctx.clock())
    url = fill(path, id=special.id)
    await ok(await ctx.client.delete(url, params={"module": "specials"}, headers=ctx.admin))
    return Expected("special.delete", "special", special.id, before={"sku": "SKU12345"})


@case("DELETE", "/api/delete/{id}")
async def seed_delete_upgrade_program(ctx: Ctx, path: str) -> Expected:
    program = await make_upgrade_program(ctx.database, now=ctx.clock())
    url = fill(path, id=program.id)
    await ok(await ctx.client.delete(url, params={"module": "upgrades"}, headers=ctx.admin))
    return Expected(
        "upgrade_program.delete", "upgrade_program", program.id, before={"title": "Go pro"}
    )


# referral programs


@case("POST", "/v1/referral-programs", "/program", "/program/")
async def create_referral_program(ctx: Ctx, path: str) -> Expected:
    body = {"name": "Friends", "credit_value": 10, "target_value": "99.90"}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    after = {"name": "Friends", "credit_value": Decimal(10), "target_value": Decimal("99.9")}
    return Expected("referral_program.create", "referral_program", made["id"], after=after)


@case("PATCH", "/v1/referral-programs/{program_id}")
async def update_referral_program(ctx: Ctx, path: str) -> Expected:
    program = await make_program(ctx.database, now=ctx.clock())
    body = {"name": "Family"}
    await ok(
        await ctx.client.patch(fill(path, program_id=program.id), json=body, headers=ctx.admin)
    )
    return Expected(
        "referral_program.update",
        "referral_program",
        program.id,
        before={"name": "Friends"},
        after={"name": "Family"},
    )


@case("PUT", "/program/{program_id}", "/program/{program_id}/")
async def seed_update_referral_program(ctx: Ctx, path: str) -> Expected:
    program = await make_program(ctx.database, now=ctx.clock())
    body = {"credit_value": "12.50"}
    await ok(await ctx.client.put(fill(path, program_id=program.id), json=body, headers=ctx.admin))
    return Expected(
        "referral_program.update",
        "referral_program",
        program.id,
        before={"credit_value": Decimal(10)},
        after={"credit_value": Decimal("12.5")},
    )


@case(
    "DELETE",
    "/v1/referral-programs/{program_id}",
    "/program/{program_id}",
    "/program/{program_id}/",
)
async def delete_referral_program(ctx: Ctx, path: str) -> Expected:
    program = await make_program(ctx.database, now=ctx.clock())
    await ok(await ctx.client.delete(fill(path, program_id=program.id), headers=ctx.admin))
    return Expected(
        "referral_program.delete", "referral_program", program.id, before={"name": "Friends"}
    )


# webhooks


@case("POST", "/v1/webhooks")
async def create_webhook(ctx: Ctx, path: str) -> Expected:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": "s" * 32}
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    after = {"url": "http://127.0.0.1:9/hook", "active": True}
    return Expected("webhook.create", "webhook", made["id"], after=after)


async def _subscription(ctx: Ctx) -> int:
    async with ctx.database.begin() as conn:
        made = await events.create_subscription(
            conn, url="http://127.0.0.1:9/hook", event_types=["*"], secret="s" * 32, now=ctx.clock()
        )
    return made.id


@case("DELETE", "/v1/webhooks/{subscription_id}")
async def delete_webhook(ctx: Ctx, path: str) -> Expected:
    subscription = await _subscription(ctx)
    await ok(await ctx.client.delete(fill(path, subscription_id=subscription), headers=ctx.admin))
    return Expected(
        "webhook.delete", "webhook", subscription, before={"active": True}, after={"active": False}
    )


@case("PATCH", "/v1/webhooks/{subscription_id}")
async def update_webhook(ctx: Ctx, path: str) -> Expected:
    subscription = await _subscription(ctx)
    body = {"events": ["code.issued"], "paused": True}
    await ok(
        await ctx.client.patch(
            fill(path, subscription_id=subscription), json=body, headers=ctx.admin
        )
    )
    return Expected(
        "webhook.update",
        "webhook",
        subscription,
        before={"active": True, "event_types": ["*"]},
        after={"active": False, "event_types": ["code.issued"]},
    )


@case("POST", "/v1/webhooks/{subscription_id}/test")
async def send_test_event(ctx: Ctx, path: str) -> Expected:
    subscription = await _subscription(ctx)
    await ok(await ctx.client.post(fill(path, subscription_id=subscription), headers=ctx.admin))
    return Expected("webhook.test", "webhook", subscription, after={"event_type": "webhook.test"})


@case("POST", "/v1/webhooks/deliveries/{delivery_id}/replay")
async def replay_delivery(ctx: Ctx, path: str) -> Expected:
    await _subscription(ctx)
    async with ctx.database.begin() as conn:
        await events.emit(conn, "referral.signed_up", {"user": "bob"}, now=ctx.clock())
        [delivery] = (await events.list_deliveries(conn)).items
    await ok(await ctx.client.post(fill(path, delivery_id=delivery.id), headers=ctx.admin))
    return Expected(
        "webhook_delivery.replay", "webhook_delivery", delivery.id, after={"replay_of": delivery.id}
    )


# games and offers


@case("PUT", "/v1/games/{game_id}")
async def update_game(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    body = {"name": "Galaxy Wars 2", "metadata": {"cacheMaxAge": 60}}
    await ok(await ctx.client.put(fill(path, game_id="galaxy"), json=body, headers=ctx.admin))
    return Expected(
        "game.update",
        "game",
        "galaxy",
        before={"name": "Galaxy Wars", "metadata": {}},
        after={"name": "Galaxy Wars 2", "metadata": {"cacheMaxAge": 60}},
    )


@case("PUT", "/games/{game_id}")
async def seed_create_game(ctx: Ctx, path: str) -> Expected:
    body = {"name": "Galaxy Wars"}
    await ok(await ctx.client.put(fill(path, game_id="galaxy"), json=body, headers=ctx.admin))
    return Expected("game.create", "game", "galaxy", after={"id": "galaxy", "name": "Galaxy Wars"})


NATIVE_OFFER = {
    "name": "Gems pack",
    "product_id": "com.galaxy.gems",
    "contents": {"gems": 5},
    "placement": "store",
    "period": {"every": "1h", "max": 2},
    "frequency": {"every": "", "max": 3},
    "trigger": {"from": 0, "to": 4_000_000_000},
}


@case("POST", "/v1/games/{game_id}/offers")
async def create_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    url = fill(path, game_id="galaxy")
    made = await ok(await ctx.client.post(url, json=NATIVE_OFFER, headers=ctx.admin))
    return Expected("offer.create", "offer", made["id"], after={"version": 1, "enabled": True})


@case("POST", "/offers")
async def seed_create_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    body = offer_fields(ctx.clock())
    made = await ok(await ctx.client.post(path, json=body, headers=ctx.admin))
    return Expected("offer.create", "offer", made["id"], after={"game_id": "galaxy"})


@case("PUT", "/v1/games/{game_id}/offers/{offer_id}")
async def update_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    offer = await make_offer(ctx.database, now=ctx.clock())
    url = fill(path, game_id="galaxy", offer_id=offer.id)
    await ok(await ctx.client.put(url, json=NATIVE_OFFER, headers=ctx.admin))
    return Expected(
        "offer.update", "offer", str(offer.id), before={"version": 1}, after={"version": 2}
    )


@case("PUT", "/offers/{offer_id}")
async def seed_update_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    offer = await make_offer(ctx.database, now=ctx.clock())
    body = offer_fields(ctx.clock(), name="Gold pack")
    await ok(await ctx.client.put(fill(path, offer_id=offer.id), json=body, headers=ctx.admin))
    return Expected(
        "offer.update", "offer", str(offer.id), before={"version": 1}, after={"version": 2}
    )


@case("POST", "/v1/games/{game_id}/offers/{offer_id}/enable")
@case("PUT", "/offers/{offer_id}/enable")
async def enable_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    offer = await make_offer(ctx.database, now=ctx.clock(), enabled=False)
    await ok(await _toggle(ctx, path, offer.id))
    return Expected(
        "offer.enable", "offer", str(offer.id), before={"enabled": False}, after={"enabled": True}
    )


@case("POST", "/v1/games/{game_id}/offers/{offer_id}/disable")
@case("PUT", "/offers/{offer_id}/disable")
async def disable_offer(ctx: Ctx, path: str) -> Expected:
    await make_game(ctx.database, now=ctx.clock())
    offer = await make_offer(ctx.database, now=ctx.clock())
    await ok(await _toggle(ctx, path, offer.id))
    return Expected(
        "offer.disable", "offer", str(offer.id), before={"enabled": True}, after={"enabled": False}
    )


async def _toggle(ctx: Ctx, path: str, offer_id: UUID) -> httpx.Response:
    url = fill(path, game_id="galaxy", offer_id=offer_id)
    if path.startswith("/v1/"):
        return await ctx.client.post(url, headers=ctx.admin)
    return await ctx.client.put(url, params={"game-id": "galaxy"}, headers=ctx.admin)


# --- every write route is audited, or operational ----------------------------------------------


def test_every_write_route_is_audited_or_declared_operational():
    missing = sorted(SERVED - CASES.keys() - OPERATIONAL.keys())
    assert not missing, (
        "these routes change something but have no audit case in tests/test_audit.py: audit "
        "them (promos.audit.service.record in the route's transaction) and add a case, or list "
        f"them in OPERATIONAL with the reason: {missing}"
    )


def test_every_listed_route_is_served():
    stale = sorted((CASES.keys() | OPERATIONAL.keys()) - SERVED)

    assert not stale, f"listed here but not served by the app: {stale}"


def test_no_route_is_both_audited_and_operational():
    assert not CASES.keys() & OPERATIONAL.keys()


AUDITED = [(method, path, fn) for (method, path), cases in sorted(CASES.items()) for fn in cases]


async def _newest(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    page = await ok(await client.get("/v1/audit", params={"limit": 1}, headers=admin))
    assert page["items"], "no audit row"
    entry: dict[str, Any] = page["items"][0]
    return entry


def _holds(snapshot: dict[str, Any] | None, fields: dict[str, Any] | None) -> bool:
    """Whether the snapshot has these fields (amounts, recorded as exact strings, by value)."""
    if fields is None:
        return snapshot is None
    if snapshot is None:
        return False
    found = {
        k: Decimal(snapshot[k]) if isinstance(v, Decimal) and k in snapshot else snapshot.get(k)
        for k, v in fields.items()
    }
    return found == fields


@pytest.fixture
def ctx(client, database, clock, admin_auth) -> Ctx:
    return Ctx(client, database, clock, admin_auth)


async def _root_id(database: Database) -> int:
    async with database.begin() as conn:
        found: int = (
            await conn.execute(select(users.c.id).where(users.c.username == "root"))
        ).scalar_one()
    return found


@pytest.mark.parametrize(
    ("method", "path", "make_change"),
    AUDITED,
    ids=[f"{m} {p} {fn.__name__}" for m, p, fn in AUDITED],
)
async def test_the_change_leaves_its_audit_row(ctx, method, path, make_change):
    expected = await make_change(ctx, path)

    entry = await _newest(ctx.client, ctx.admin)

    root = {"kind": "user", "id": await _root_id(ctx.database), "name": "root", "role": "admin"}
    assert entry["actor"] == root
    assert entry["action"] == expected.action, method
    assert entry["target"] == {"type": expected.target_type, "id": str(expected.target_id)}
    assert datetime.fromisoformat(entry["at"]) == ctx.clock()
    assert _holds(entry["before"], expected.before), entry["before"]
    assert _holds(entry["after"], expected.after), entry["after"]


# --- who, and what is left out -----------------------------------------------------------------


async def test_the_actor_is_the_credential_that_made_the_change(ctx):
    secret = await make_api_key(ctx.database, name="ops", role="admin", now=ctx.clock())
    key = {"Authorization": f"Bearer {secret}"}
    await ok(await ctx.client.post("/v1/specials", json=SPECIAL, headers=key))

    entry = await _newest(ctx.client, ctx.admin)

    async with ctx.database.begin() as conn:
        key_id = (await conn.execute(select(api_keys.c.id))).scalar_one()
    assert entry["actor"] == {"kind": "api_key", "id": key_id, "name": "ops", "role": "admin"}


async def test_a_refused_change_leaves_no_audit_row(ctx):
    response = await ctx.client.put("/v1/specials/4242", json=SPECIAL, headers=ctx.admin)

    assert response.status_code == 404
    assert (await ok(await ctx.client.get("/v1/audit", headers=ctx.admin)))["items"] == []


async def _stored_audit(database: Database) -> str:
    async with database.begin() as conn:
        return repr([tuple(row) for row in await conn.execute(select(audit_log))])


async def test_no_secret_reaches_the_audit_log(ctx):
    password, webhook_secret, brand_secret = "a long password", "w" * 40, "b" * 24
    await ok(
        await ctx.client.post(
            "/v1/users", json={"username": "ursula", "password": password}, headers=ctx.admin
        )
    )
    key = await ok(await ctx.client.post("/v1/api-keys", json={"name": "shop"}, headers=ctx.admin))
    await ok(
        await ctx.client.post(
            "/v1/brand-users", json={"user_id": "u-1", "secret": brand_secret}, headers=ctx.admin
        )
    )
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": webhook_secret}
    await ok(await ctx.client.post("/v1/webhooks", json=hook, headers=ctx.admin))
    async with ctx.database.begin() as conn:
        digests = [
            *(await conn.execute(select(users.c.password_hash))).scalars(),
            *(await conn.execute(select(api_keys.c.digest))).scalars(),
            *(await conn.execute(select(brand_users.c.secret_digest))).scalars(),
        ]

    stored = await _stored_audit(ctx.database)

    assert stored.count("'user.create'") == 1
    assert stored.count("'webhook.create'") == 1
    for secret in (password, key["key"], brand_secret, webhook_secret, *digests):
        assert secret not in stored


def test_a_snapshot_leaves_out_the_fields_that_hold_secrets():
    @dataclass
    class Holder:
        name: str
        password_hash: str
        secret: str
        digest: str

    assert audit.snapshot(Holder("shop", "$argon2id$x", "pk_x", "ab12")) == {"name": "shop"}


def test_a_snapshot_keeps_amounts_exact_and_times_in_iso_8601():
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)

    snapshot = audit.snapshot({"amount": Decimal("0.10"), "at": at, "wait": timedelta(hours=1)})

    assert snapshot == {"amount": "0.10", "at": "2026-03-01T12:00:00+00:00", "wait": 3600.0}


# --- reading the log ---------------------------------------------------------------------------


async def _record(ctx: Ctx, action: str, target_id: int, *, actor_id: int = 1) -> None:
    actor = auth_service.Principal("user", actor_id, f"user{actor_id}", "admin")
    target_type = action.partition(".")[0]
    async with ctx.database.begin() as conn:
        await audit.record(
            conn,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            at=ctx.clock(),
        )


async def _listed(ctx: Ctx, **params: Any) -> list[tuple[str, str]]:
    page = await ok(await ctx.client.get("/v1/audit", params=params, headers=ctx.admin))
    return [(e["action"], e["target"]["id"]) for e in page["items"]]


async def test_the_log_lists_the_newest_change_first(ctx):
    await _record(ctx, "special.create", 1)
    await _record(ctx, "special.update", 1)

    assert await _listed(ctx) == [("special.update", "1"), ("special.create", "1")]


async def test_the_log_filters_by_actor(ctx):
    await _record(ctx, "special.create", 1, actor_id=7)
    await _record(ctx, "special.create", 2, actor_id=8)

    assert await _listed(ctx, actor="user:7") == [("special.create", "1")]


async def test_the_log_filters_by_action(ctx):
    await _record(ctx, "special.create", 1)
    await _record(ctx, "special.delete", 1)

    assert await _listed(ctx, action="special.delete") == [("special.delete", "1")]


async def test_the_log_filters_by_target(ctx):
    await _record(ctx, "special.update", 1)
    await _record(ctx, "special.update", 2)
    await _record(ctx, "game.update", 2)

    listed = await _listed(ctx, target_type="special", target_id="2")

    assert listed == [("special.update", "2")]


async def test_the_log_filters_by_time_range(ctx):
    await _record(ctx, "special.create", 1)
    ctx.clock.advance(hours=1)
    start = ctx.clock()
    await _record(ctx, "special.create", 2)
    ctx.clock.advance(hours=1)
    await _record(ctx, "special.create", 3)

    listed = await _listed(
        ctx, since=start.isoformat(), until=(start + timedelta(hours=1)).isoformat()
    )

    assert listed == [("special.create", "2")]


async def test_the_log_pages_by_cursor_without_gaps_or_repeats(ctx):
    for n in range(5):
        await _record(ctx, "special.create", n)
    seen: list[str] = []
    cursor = None
    for _ in range(5):  # bounded: 5 rows, 2 a page
        params = {"limit": 2} | ({"cursor": cursor} if cursor is not None else {})
        page = await ok(await ctx.client.get("/v1/audit", params=params, headers=ctx.admin))
        seen += [e["target"]["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["4", "3", "2", "1", "0"]


async def test_only_an_admin_may_read_the_log(client, auth):
    response = await client.get("/v1/audit", headers=auth)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"


@pytest.mark.parametrize("actor", ["root", "user:", "key:1", "user:x", f"user:{2**63}"])
async def test_a_malformed_actor_filter_is_a_422(ctx, actor):
    response = await ctx.client.get("/v1/audit", params={"actor": actor}, headers=ctx.admin)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_actor"


async def test_a_time_without_a_timezone_is_a_422(ctx):
    response = await ctx.client.get(
        "/v1/audit", params={"since": "2026-03-01T12:00:00"}, headers=ctx.admin
    )

    assert response.status_code == 422


# --- one transaction with the change (PostgreSQL) ----------------------------------------------


@pytest.mark.postgres_only
async def test_a_change_whose_audit_row_cannot_be_written_is_not_made(ctx):
    # Take the id the next audit row will get, so that writing that row fails on its key.
    async with ctx.database.begin() as conn:
        await conn.execute(
            audit_log.insert().values(
                id=func.nextval("audit_log_id_seq") + 1,
                at=ctx.clock(),
                actor_kind="user",
                actor_id=1,
                actor_name="squatter",
                actor_role="admin",
                action="special.create",
                target_type="special",
                target_id="0",
            )
        )

    response = await ctx.client.post("/v1/specials", json=SPECIAL, headers=ctx.admin)

    assert response.status_code == 500
    async with ctx.database.begin() as conn:
        assert (await catalog.list_specials(conn)).items == []


@pytest.mark.postgres_only
async def test_concurrent_updates_each_record_what_they_replaced(ctx):
    special = await make_special(ctx.database, now=ctx.clock())
    titles = [f"Title {n}" for n in range(8)]

    responses = await asyncio.gather(
        *(
            ctx.client.put(
                f"/v1/specials/{special.id}", json={**SPECIAL, "title": t}, headers=ctx.admin
            )
            for t in titles
        )
    )

    assert [r.status_code for r in responses] == [200] * len(titles)
    page = await ok(
        await ctx.client.get("/v1/audit", params={"action": "special.update"}, headers=ctx.admin)
    )
    oldest_first = page["items"][::-1]
    chain = ["Summer special"] + [e["after"]["title"] for e in oldest_first]
    assert [e["before"]["title"] for e in oldest_first] == chain[:-1]
    assert sorted(chain[1:]) == sorted(titles)
