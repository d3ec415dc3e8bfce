"""The credential of each schemathesis call (loaded by ``fuzz/run.py`` as SCHEMATHESIS_HOOKS).

``PROMOS_FUZZ_CREDENTIAL`` says which:

- ``static``: the admin API key the run seeded with, for every call;
- ``fresh``: a new one for each call, for the operations that sign out or disable the
  caller: a sign-in token for the sign-out route (which revokes it), of a user made for it in
  the database, else an admin API key made in the database itself (any key or user that
  could make one over HTTP may have been revoked or disabled by an earlier call).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

import httpx
import schemathesis

from promos.auth import service
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings

_KIND = os.environ.get("PROMOS_FUZZ_CREDENTIAL", "static")


async def _new_admin_key() -> str:
    database = Database(Settings().database_url, pool_size=1, max_overflow=0)
    try:
        async with database.begin() as conn:
            made = await service.create_api_key(conn, name="fuzz", role="admin", now=utc_now())
        return made.secret
    finally:
        await database.dispose()


async def _new_user() -> str:
    """A user of its own for one sign-out: an earlier call may have disabled any other."""
    database = Database(Settings().database_url, pool_size=1, max_overflow=0)
    try:
        async with database.begin() as conn:
            made = await service.create_user(
                conn,
                username=f"fuzz-signer-{secrets.token_hex(8)}",
                password=os.environ["PROMOS_FUZZ_PASSWORD"],
                role="sales",
                now=utc_now(),
            )
        return made.username
    finally:
        await database.dispose()


def _new_token() -> str:
    response = httpx.post(
        os.environ["PROMOS_FUZZ_URL"] + "/v1/auth/tokens",
        json={
            "login": asyncio.run(_new_user()),
            "password": os.environ["PROMOS_FUZZ_PASSWORD"],
        },
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


SIGN_OUT = "/v1/auth/tokens/current"


# No caching of fresh ones: every call gets its own.
@schemathesis.auth(refresh_interval=None if _KIND == "fresh" else 3600, retry_on=[])
class Credential:
    def get(self, case: Any, _context: Any) -> str:
        if _KIND == "static":
            return os.environ["PROMOS_FUZZ_ADMIN_KEY"]
        if case.operation.path == SIGN_OUT:
            return _new_token()
        return asyncio.run(_new_admin_key())

    def set(self, case: Any, data: str, _context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
