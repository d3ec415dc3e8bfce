"""Two-factor sign-in (TOTP): enrolment, sign-in with a code or a recovery code, replays
refused, HTTP Basic refused for its users, the admins' requirement, resets by an admin and
the command line. Codes are computed with pyotp at the FakeClock's time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from promos.audit.tables import audit_log
from promos.auth import service as auth_service
from promos.auth import twofactor
from promos.auth.errors import InvalidSecondFactor
from promos.db import Database
from promos.settings import Settings
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.factories.auth import make_api_key, make_user
from tests.test_cli import promos, query

SALES_PASSWORD = "sales password"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No credential cache: each change shows at the very next request."""
    return settings.model_copy(update={"auth_cache_seconds": 0})


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": httpx.BasicAuth(username, password)._auth_header}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code(secret: str, clock: FakeClock) -> str:
    """The authenticator app's code at the clock's time (pyotp, as a phone computes it)."""
    return pyotp.TOTP(secret).at(clock())


async def sign_in(
    client: httpx.AsyncClient, login: str, password: str, otp: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"login": login, "password": password}
    if otp is not None:
        body["otp"] = otp
    return await client.post("/v1/auth/tokens", json=body)


async def token_of(
    client: httpx.AsyncClient, login: str, password: str, otp: str | None = None
) -> str:
    response = await sign_in(client, login, password, otp)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def enrol(
    client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock
) -> tuple[str, list[str]]:
    """Start and confirm two-factor sign-in: the secret and the recovery codes."""
    started = await client.post("/v1/auth/two-factor", headers=headers)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/v1/auth/two-factor/confirm", json={"otp": code(secret, clock)}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    return secret, codes


@pytest.fixture
async def sally(database: Database, clock: FakeClock) -> auth_service.User:
    return await make_user(
        database, username="sally", password=SALES_PASSWORD, role="sales", now=clock()
    )


@pytest.fixture
async def sally_2fa(
    client: httpx.AsyncClient, sally: auth_service.User, clock: FakeClock
) -> tuple[str, list[str]]:
    """Sally enrolled: her secret and recovery codes; the clock moved past the code used."""
    token = await token_of(client, "sally", SALES_PASSWORD)
    enrolled = await enrol(client, bearer(token), clock)
    clock.advance(seconds=30)
    return enrolled


# --- enrolment ---------------------------------------------------------------------------------


async def test_enrolment_starts_pending_with_an_otpauth_uri(client, sally):
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD))

    started = await client.post("/v1/auth/two-factor", headers=headers)

    assert started.status_code == 201
    body = started.json()
    assert body["uri"].startswith("otpauth://totp/Promos:sally?secret=" + body["secret"])
    status = (await client.get("/v1/auth/two-factor", headers=headers)).json()
    assert status == {
        "enabled": False,
        "pending": True,
        "recovery_codes_left": 0,
        "required": False,
    }
    # Pending: the password alone still signs in.
    assert (await sign_in(client, "sally", SALES_PASSWORD)).status_code == 201


async def test_confirming_with_a_current_code_turns_it_on_with_ten_recovery_codes(
    client, sally, clock
):
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD))

    _secret, codes = await enrol(client, headers, clock)

    assert len(codes) == 10 == len(set(codes))
    status = (await client.get("/v1/auth/two-factor", headers=headers)).json()
    assert status == {
        "enabled": True,
        "pending": False,
        "recovery_codes_left": 10,
        "required": False,
    }
    users = await client.get("/v1/auth/me", headers=headers)
    assert users.status_code == 200


async def test_confirming_with_a_wrong_code_is_refused_and_leaves_it_pending(client, sally):
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD))
    await client.post("/v1/auth/two-factor", headers=headers)

    refused = await client.post(
        "/v1/auth/two-factor/confirm", json={"otp": "000000"}, headers=headers
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "wrong_second_factor"
    status = (await client.get("/v1/auth/two-factor", headers=headers)).json()
    assert status["pending"]
    assert not status["enabled"]


async def test_enrolling_again_while_on_is_a_conflict(client, sally, sally_2fa, clock):
    secret, _ = sally_2fa
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD, code(secret, clock)))

    again = await client.post("/v1/auth/two-factor", headers=headers)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "two_factor_enabled"


async def test_an_api_key_has_no_second_factor_to_enrol(client, auth):
    refused = await client.post("/v1/auth/two-factor", headers=auth)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_for_people"


# --- sign-in -----------------------------------------------------------------------------------


async def test_sign_in_without_the_code_is_refused_with_second_factor_required(client, sally_2fa):
    refused = await sign_in(client, "sally", SALES_PASSWORD)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "second_factor_required"
    assert "token" not in refused.text


async def test_sign_in_with_the_current_code_gives_a_token(client, sally_2fa, clock):
    secret, _ = sally_2fa

    signed_in = await sign_in(client, "sally", SALES_PASSWORD, code(secret, clock))

    assert signed_in.status_code == 201
    assert signed_in.json()["user"]["two_factor"] is True
    me = await client.get("/v1/auth/me", headers=bearer(signed_in.json()["token"]))
    assert me.json()["name"] == "sally"


async def test_sign_in_with_a_wrong_password_and_a_right_code_is_refused(client, sally_2fa, clock):
    secret, _ = sally_2fa

    refused = await sign_in(client, "sally", "not her password", code(secret, clock))

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_credentials"


async def test_a_code_of_the_previous_step_is_accepted(client, sally_2fa, clock):
    secret, _ = sally_2fa
    clock.advance(seconds=30)  # the step before is one whose code was not used yet
    previous = pyotp.TOTP(secret).at(clock(), counter_offset=-1)

    assert (await sign_in(client, "sally", SALES_PASSWORD, previous)).status_code == 201


async def test_a_code_two_steps_old_is_refused(client, sally_2fa, clock):
    secret, _ = sally_2fa
    old = pyotp.TOTP(secret).at(clock(), counter_offset=-2)

    refused = await sign_in(client, "sally", SALES_PASSWORD, old)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_second_factor"


async def test_a_replayed_code_is_refused(client, sally_2fa, clock):
    secret, _ = sally_2fa
    once = code(secret, clock)
    assert (await sign_in(client, "sally", SALES_PASSWORD, once)).status_code == 201

    replayed = await sign_in(client, "sally", SALES_PASSWORD, once)

    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "invalid_second_factor"
    clock.advance(seconds=30)
    assert (await sign_in(client, "sally", SALES_PASSWORD, code(secret, clock))).status_code == 201


async def test_a_recovery_code_signs_in_once(client, sally_2fa):
    _, codes = sally_2fa

    first = await sign_in(client, "sally", SALES_PASSWORD, codes[0].upper())
    again = await sign_in(client, "sally", SALES_PASSWORD, codes[0])

    assert first.status_code == 201
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_second_factor"
    status = await client.get("/v1/auth/two-factor", headers=bearer(first.json()["token"]))
    assert status.json()["recovery_codes_left"] == 9


async def test_wrong_codes_count_as_failed_sign_ins(settings, client, sally_2fa, clock):
    secret, _ = sally_2fa
    for _ in range(settings.rate_limit_signin_per_login):
        assert (await sign_in(client, "sally", SALES_PASSWORD, "000000")).status_code == 401

    locked = await sign_in(client, "sally", SALES_PASSWORD, code(secret, clock))

    assert locked.status_code == 429


async def test_the_promos_seeds_sign_in_takes_otp(client, sally_2fa, clock):
    secret, _ = sally_2fa
    body = {"login": "sally", "password": SALES_PASSWORD}

    refused = await client.post("/signin", json=body)
    signed_in = await client.post("/api/signin", json={**body, "otp": code(secret, clock)})

    assert refused.status_code == 401
    assert refused.json()["status"] == 401
    assert "second factor" in refused.json()["error"]
    assert signed_in.status_code == 200
    assert signed_in.json()["token"].startswith("pt_")


# --- HTTP Basic --------------------------------------------------------------------------------


async def test_http_basic_is_refused_for_a_user_with_two_factor_sign_in(client, sally_2fa):
    refused = await client.get("/v1/auth/me", headers=basic("sally", SALES_PASSWORD))

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "basic_refused_two_factor"
    assert "HTTP Basic" in refused.json()["error"]["message"]


async def test_http_basic_is_refused_on_the_offers_routes_in_their_shape(client, admin_auth, clock):
    token = await token_of(client, "root", ADMIN_PASSWORD)
    await enrol(client, bearer(token), clock)

    refused = await client.put("/games/galaxy", json={"name": "Galaxy"}, headers=admin_auth)

    assert refused.status_code == 401
    body = refused.json()
    assert set(body) >= {"error", "code", "description"}
    assert "HTTP Basic" in body["description"]


async def test_http_basic_still_works_for_a_user_without_it(client, sally):
    me = await client.get("/v1/auth/me", headers=basic("sally", SALES_PASSWORD))

    assert me.status_code == 200


# --- disabling and resetting -------------------------------------------------------------------


async def test_a_user_disables_it_with_a_current_code(client, sally_2fa, clock):
    secret, _ = sally_2fa
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD, code(secret, clock)))
    clock.advance(seconds=30)

    off = await client.post(
        "/v1/auth/two-factor/disable", json={"otp": code(secret, clock)}, headers=headers
    )

    assert off.status_code == 204
    assert (await sign_in(client, "sally", SALES_PASSWORD)).status_code == 201


async def test_a_user_disables_it_with_the_password(client, sally_2fa, clock):
    secret, _ = sally_2fa
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD, code(secret, clock)))

    wrong = await client.post(
        "/v1/auth/two-factor/disable", json={"password": "not it at all"}, headers=headers
    )
    off = await client.post(
        "/v1/auth/two-factor/disable", json={"password": SALES_PASSWORD}, headers=headers
    )

    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "wrong_password"
    assert off.status_code == 204


async def test_an_admin_resets_a_users_two_factor_sign_in_audited(
    client, admin_auth, sally, sally_2fa, database
):
    reset = await client.delete(f"/v1/users/{sally.id}/two-factor", headers=admin_auth)

    assert reset.status_code == 204
    assert (await sign_in(client, "sally", SALES_PASSWORD)).status_code == 201
    async with database.begin() as conn:
        row = (
            await conn.execute(
                select(audit_log).where(audit_log.c.action == "user.two_factor_reset")
            )
        ).one()
    assert row.actor_name == "root"
    assert row.target_id == str(sally.id)


async def test_a_sales_user_cannot_reset_another_users_two_factor_sign_in(
    client, sally, database, clock
):
    other = await make_user(database, username="tom", password=SALES_PASSWORD, now=clock())
    headers = basic("sally", SALES_PASSWORD)

    refused = await client.delete(f"/v1/users/{other.id}/two-factor", headers=headers)

    assert refused.status_code == 403


# --- the admins' requirement -------------------------------------------------------------------


@pytest.fixture
async def ops_key(database: Database, clock: FakeClock) -> dict[str, str]:
    """An admin API key's headers (keys are for machines: no second factor)."""
    return bearer(await make_api_key(database, name="ops", role="admin", now=clock()))


@pytest.fixture
async def required(client: httpx.AsyncClient, ops_key: dict[str, str]) -> None:
    """A second factor is required of admins (set with an admin API key)."""
    response = await client.put(
        "/v1/auth/settings", json={"require_two_factor_for_admins": True}, headers=ops_key
    )
    assert response.status_code == 200, response.text


async def test_requiring_it_for_admins_is_a_stored_audited_setting(
    client, ops_key, required, database
):
    shown = await client.get("/v1/auth/settings", headers=ops_key)

    assert shown.json() == {"require_two_factor_for_admins": True}
    async with database.begin() as conn:
        row = (
            await conn.execute(
                select(audit_log).where(audit_log.c.action == "auth_settings.update")
            )
        ).one()
    assert row.after == {"require_two_factor_for_admins": True}


async def test_an_admin_must_enrol_before_requiring_it_of_every_admin(client, admin_auth, clock):
    body = {"require_two_factor_for_admins": True}
    refused = await client.put("/v1/auth/settings", json=body, headers=admin_auth)
    token = await token_of(client, "root", ADMIN_PASSWORD)
    await enrol(client, bearer(token), clock)
    allowed = await client.put("/v1/auth/settings", json=body, headers=bearer(token))

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "enrol_before_requiring"
    assert allowed.status_code == 200


async def test_an_admin_without_it_while_required_gets_a_token_that_can_only_enrol(
    client, required, database, clock
):
    await make_user(database, username="ada", password=ADMIN_PASSWORD, role="admin", now=clock())
    headers = bearer(await token_of(client, "ada", ADMIN_PASSWORD))

    refused = await client.get("/v1/users", headers=headers)
    me = await client.get("/v1/auth/me", headers=headers)
    status = await client.get("/v1/auth/two-factor", headers=headers)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_enrolment_required"
    assert me.status_code == 200
    assert status.json()["required"] is True


async def test_once_enrolled_the_admins_token_opens_everything(client, required, database, clock):
    await make_user(database, username="ada", password=ADMIN_PASSWORD, role="admin", now=clock())
    headers = bearer(await token_of(client, "ada", ADMIN_PASSWORD))

    await enrol(client, headers, clock)

    assert (await client.get("/v1/users", headers=headers)).status_code == 200


async def test_the_requirement_leaves_sales_users_alone(client, required, sally):
    headers = bearer(await token_of(client, "sally", SALES_PASSWORD))

    assert (await client.get("/v1/promocodes", headers=headers)).status_code == 200


async def test_an_admins_basic_credential_while_required_can_only_enrol(
    client, admin_auth, required
):
    refused = await client.get("/v1/users", headers=admin_auth)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_enrolment_required"


async def test_api_keys_are_not_held_to_the_requirement(client, required, ops_key):
    assert (await client.get("/v1/users", headers=ops_key)).status_code == 200


# --- the command line --------------------------------------------------------------------------


def test_the_cli_resets_a_locked_out_users_two_factor_sign_in(database_url, clock):
    now = clock()

    async def enrolled(conn):
        user = await auth_service.create_user(
            conn, username="lou", password=SALES_PASSWORD, role="sales", now=now
        )
        started = await twofactor.start(conn, user_id=user.id, username="lou", now=now)
        await twofactor.confirm(conn, user_id=user.id, otp=code(started.secret, clock), now=now)
        return user

    user = query(database_url, enrolled)

    result = promos(database_url, "users", "reset-2fa", "lou")

    assert result.exit_code == 0, result.output
    assert "turned off" in result.output
    assert not query(database_url, lambda conn: twofactor.is_enabled(conn, user.id))
    actions = query(database_url, _actions)
    assert ("user.two_factor_reset", "cli") in actions


async def _actions(conn: Any) -> list[tuple[str, str]]:
    rows = await conn.execute(select(audit_log.c.action, audit_log.c.actor_kind))
    return [(row.action, row.actor_kind) for row in rows]


# --- under concurrency -------------------------------------------------------------------------


async def _verify_at_once(database: Database, user_id: int, otp: str, now: Any) -> list[str]:
    """``otp`` checked by many transactions at once, each on a connection of its own (sign-in
    itself takes turns per login in one process: this is many processes' view)."""

    async def one() -> str:
        try:
            async with database.begin() as conn:
                return await twofactor.verify(conn, user_id=user_id, otp=otp, now=now)
        except InvalidSecondFactor:
            return "refused"

    return list(await asyncio.gather(*(one() for _ in range(12))))


@pytest.mark.postgres_only
async def test_one_code_checked_at_once_by_many_is_accepted_once(database, sally, sally_2fa, clock):
    secret, _ = sally_2fa

    answers = await _verify_at_once(database, sally.id, code(secret, clock), clock())

    assert sorted(answers) == ["refused"] * 11 + ["totp"]


@pytest.mark.postgres_only
async def test_one_recovery_code_checked_at_once_by_many_is_accepted_once(
    database, sally, sally_2fa, clock
):
    _, codes = sally_2fa

    answers = await _verify_at_once(database, sally.id, codes[0], clock())

    assert sorted(answers) == ["recovery"] + ["refused"] * 11
