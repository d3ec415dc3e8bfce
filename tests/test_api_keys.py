"""API keys' expiry, rotation and usage (docs/operations.md#api-keys-expiry-rotation-usage)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from promos.state import AppState
from tests.conftest import FakeClock


async def _key(client: httpx.AsyncClient, admin: dict[str, str], **body: object) -> dict:
    made = await client.post("/v1/api-keys", json={"name": "svc", **body}, headers=admin)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_key_works_until_it_expires(
    client: httpx.AsyncClient, admin_auth: dict[str, str], clock: FakeClock, state: AppState
) -> None:
    expires = clock() + timedelta(hours=1)
    made = await _key(client, admin_auth, expires_at=expires.isoformat())
    assert made["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert (await client.get("/v1/auth/me", headers=_bearer(made["key"]))).status_code == 200

    clock.advance(hours=1)
    state.authenticator.forget_all()  # as a process would whose cache has run out

    refused = await client.get("/v1/auth/me", headers=_bearer(made["key"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "the API key is unknown, expired or revoked"


async def test_a_key_expiring_in_the_past_is_not_made(
    client: httpx.AsyncClient, admin_auth: dict[str, str], clock: FakeClock
) -> None:
    body = {"name": "svc", "expires_at": (clock() - timedelta(seconds=1)).isoformat()}
    made = await client.post("/v1/api-keys", json=body, headers=admin_auth)

    assert made.status_code == 422
    assert made.json()["error"]["code"] == "invalid_expiry"


async def test_a_rotated_key_has_a_new_secret_and_the_old_one_works_for_the_grace(
    client: httpx.AsyncClient, admin_auth: dict[str, str], clock: FakeClock, state: AppState
) -> None:
    made = await _key(client, admin_auth, scopes=["promocodes:use"])

    rotated = await client.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"grace_seconds": 600}, headers=admin_auth
    )

    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["key"] != made["key"]
    assert new["prefix"] == new["key"][:10]
    assert new["scopes"] == ["promocodes:use"]
    assert new["rotated_at"] is not None
    assert new["previous_valid_until"] is not None
    for secret in (made["key"], new["key"]):
        assert (await client.get("/v1/auth/me", headers=_bearer(secret))).status_code == 200
    clock.advance(seconds=600)
    state.authenticator.forget_all()
    assert (await client.get("/v1/auth/me", headers=_bearer(made["key"]))).status_code == 401
    assert (await client.get("/v1/auth/me", headers=_bearer(new["key"]))).status_code == 200


async def test_a_rotation_without_grace_stops_the_old_secret_at_once(
    client: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    made = await _key(client, admin_auth)

    rotated = await client.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"grace_seconds": 0}, headers=admin_auth
    )

    assert rotated.json()["previous_valid_until"] is None
    assert (await client.get("/v1/auth/me", headers=_bearer(made["key"]))).status_code == 401


@pytest.mark.parametrize(("grace", "status"), [(-1, 422), (30 * 86400 + 1, 422), (30 * 86400, 200)])
async def test_a_rotations_grace_is_up_to_30_days(
    grace: int, status: int, client: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    made = await _key(client, admin_auth)

    rotated = await client.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"grace_seconds": grace}, headers=admin_auth
    )

    assert rotated.status_code == status


async def test_a_revoked_key_is_not_rotated_back_to_life(
    client: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    made = await _key(client, admin_auth)
    await client.delete(f"/v1/api-keys/{made['id']}", headers=admin_auth)

    rotated = await client.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"grace_seconds": 60}, headers=admin_auth
    )

    assert rotated.status_code == 409
    assert rotated.json()["error"]["code"] == "api_key_revoked"


async def test_a_keys_use_is_counted_in_memory_and_shown_once_flushed(
    client: httpx.AsyncClient, admin_auth: dict[str, str], clock: FakeClock, state: AppState
) -> None:
    made = await _key(client, admin_auth)
    for _ in range(3):
        await client.get("/v1/auth/me", headers=_bearer(made["key"]))
    before = (await client.get("/v1/api-keys", headers=admin_auth)).json()["items"][0]
    assert (before["request_count"], before["last_used_at"]) == (0, None)

    usage = state.authenticator.usage
    assert usage is not None
    assert await usage.flush() == 1

    [shown] = (await client.get("/v1/api-keys", headers=admin_auth)).json()["items"]
    assert shown["request_count"] == 3
    assert shown["last_used_at"] == clock().isoformat().replace("+00:00", "Z")
    assert shown["last_used_from"] == "127.0.0.1"


async def test_flushes_add_up(
    client: httpx.AsyncClient, admin_auth: dict[str, str], state: AppState
) -> None:
    made = await _key(client, admin_auth)
    usage = state.authenticator.usage
    assert usage is not None
    for _ in range(2):
        await client.get("/v1/auth/me", headers=_bearer(made["key"]))
        await usage.flush()

    [shown] = (await client.get("/v1/api-keys", headers=admin_auth)).json()["items"]
    assert shown["request_count"] == 2
