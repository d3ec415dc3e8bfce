"""Console tests: a browser's view over HTTP (httpx keeps the cookies), signed in or not."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from promos.auth.service import User
from promos.db import Database
from tests.conftest import FakeClock
from tests.factories.auth import make_user

ADMIN_PASSWORD = "admin password"
SALES_PASSWORD = "sales password"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _TOKEN.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str, *, next_path: str | None = None
) -> httpx.Response:
    """Open the sign-in page and post its form, as a browser does."""
    page = await client.get("/admin/sign-in", params={"next": next_path} if next_path else None)
    data = {"csrf_token": csrf_token(page.text), "username": username, "password": password}
    if next_path:
        data["next"] = next_path
    return await client.post("/admin/sign-in", data=data)


async def submit(
    client: httpx.AsyncClient, page: str, action: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """Open ``page`` and post ``data`` to ``action`` with the page's CSRF token."""
    opened = await client.get(page)
    assert opened.status_code == 200, opened.text
    return await client.post(action, data={**(data or {}), "csrf_token": csrf_token(opened.text)})


def browser(app: FastAPI, base_url: str = "http://promos.test") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def admin(database: Database, clock: FakeClock) -> User:
    return await make_user(
        database, username="ada", password=ADMIN_PASSWORD, role="admin", now=clock()
    )


@pytest.fixture
async def sales(database: Database, clock: FakeClock) -> User:
    return await make_user(
        database, username="sam", password=SALES_PASSWORD, role="sales", now=clock()
    )


@pytest.fixture
async def as_admin(app: FastAPI, admin: User) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as an admin."""
    async with browser(app) as client:
        response = await sign_in(client, admin.username, ADMIN_PASSWORD)
        assert response.status_code == 303, response.text
        yield client


@pytest.fixture
async def as_sales(app: FastAPI, sales: User) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as a sales person."""
    async with browser(app) as client:
        response = await sign_in(client, sales.username, SALES_PASSWORD)
        assert response.status_code == 303, response.text
        yield client
