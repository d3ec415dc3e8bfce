"""What every native route (/v1) shares: no query parameter it does not take."""

from __future__ import annotations

import pytest

from promos.app import create_app
from promos.settings import Settings
from tests._routes import app_routes, concrete_path

_APP_ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")))
NATIVE_GETS = sorted(
    path for method, path in _APP_ROUTES if method == "GET" and path.startswith("/v1")
)


def test_the_native_get_routes_are_all_there():
    assert "/v1/batches" in NATIVE_GETS
    assert "/v1/webhooks/deliveries" in NATIVE_GETS
    assert len(NATIVE_GETS) > 20


@pytest.mark.parametrize("path", NATIVE_GETS)
async def test_a_native_get_route_refuses_an_unknown_query_parameter(client, admin_auth, path):
    url = concrete_path(path, _APP_ROUTES["GET", path])

    response = await client.get(url, params={"clientid": "x"}, headers=admin_auth)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter"
    assert "clientid" in error["message"]
    assert error["details"]["unknown"] == ["clientid"]


async def test_a_misspelt_filter_does_not_list_every_clients_batches(client, auth):
    response = await client.get(
        "/v1/batches?clientid=00000000-0000-0000-0000-000000000001", headers=auth
    )

    assert response.status_code == 400
    assert "client_id" in response.json()["error"]["message"]  # what the route does take


async def test_an_unknown_parameter_is_refused_before_the_credential_is_asked(client):
    response = await client.get("/v1/batches?clientid=x")

    assert response.status_code == 400


async def test_the_known_query_parameters_still_work(client, auth):
    response = await client.get(
        "/v1/batches?client_id=00000000-0000-0000-0000-000000000001", headers=auth
    )

    assert response.status_code == 200


async def test_the_ango_batch_list_keeps_ignoring_unknown_parameters(client, auth):
    response = await client.get("/api/v1/batches?foo=1", headers=auth)

    assert response.status_code == 200
