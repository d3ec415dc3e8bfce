"""Logs: one JSON line per request, request ids, warnings with their request, and no secret.

The log is captured as a server writes it: the records through the JSON formatter on the root
logger, with the levels ``log_config`` gives each logger (at debug, the most a server can be
asked to say), and the access lines from stderr, where ``AccessLog`` writes them.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import bindparam, select, text

from promos.app import create_app
from promos.brands import service as brands
from promos.db import Database
from promos.observability.logs import (
    REQUEST_ID,
    AccessLog,
    JSONFormatter,
    TextFormatter,
    chosen_format,
    format_exception,
    logger_levels,
)
from promos.offers.tables import offer_players
from promos.settings import Settings
from tests._receiver import ALLOWED_HOSTS
from tests.factories.auth import make_user
from tests.factories.codes import CLIENT, make_batch

METRICS_TOKEN = "scrape-token-0123456789abcdef"
ADMIN_PASSWORD = "bootstrap admin's own password"
WEBHOOK_SECRET = "billing callbacks' signing secret"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        metrics_token=METRICS_TOKEN,
        admin_user="boss",
        admin_password=ADMIN_PASSWORD,
        webhook_secret=WEBHOOK_SECRET,
        webhook_dispatcher=False,
        webhook_allowed_hosts=ALLOWED_HOSTS,
        log_format="json",
    )


class Captured:
    """The JSON lines of the records logged and of the access lines written, in the test."""

    def __init__(self, records: io.StringIO, stderr: pytest.CaptureFixture[str]) -> None:
        self._records = records
        self._stderr = stderr
        self._written = ""

    def text(self) -> str:
        self._written += self._stderr.readouterr().err
        return self._records.getvalue() + self._written

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "promos.access"]


@pytest.fixture
def captured(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """Everything logged or written to stderr during the test, at debug level."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JSONFormatter())
    levels = logger_levels(settings.model_copy(update={"log_level": "debug"}))
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in levels}
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield Captured(buffer, capsys)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# access lines


async def test_each_request_is_one_json_line_with_its_route_template(client, auth, captured):
    batch_id = uuid4()
    await client.get(f"/v1/batches/{batch_id}", headers={**auth, "X-Request-ID": "req-42"})

    [line] = captured.access_lines()
    assert line["method"] == "GET"
    assert line["route"] == "/v1/batches/{batch_id}"
    assert line["status"] == 404
    assert line["request_id"] == "req-42"
    assert line["duration_ms"] > 0
    assert line["credential"].startswith("api_key:")
    assert str(batch_id) not in captured.text()


async def test_a_fast_route_is_logged_with_its_credential(client, auth, database, clock, captured):
    batch = await make_batch(database, now=clock())
    body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": str(uuid4())}
    await client.post("/api/v1/code/redeem", json=body, headers=auth)

    [line] = captured.access_lines()
    assert (line["route"], line["status"]) == ("/api/v1/code/redeem", 200)
    assert line["credential"].startswith("api_key:")


async def test_a_public_request_is_logged_without_a_credential(client, captured):
    await client.get("/healthcheck")
    [line] = captured.access_lines()
    assert line["credential"] is None


async def test_the_access_log_can_be_turned_off(database_url, clock, captured):
    app = create_app(
        Settings(database_url=database_url, access_log=False, log_format="json"), clock=clock
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            assert (await http.get("/healthcheck")).status_code == 200
    assert captured.access_lines() == []


# request ids


async def test_a_given_request_id_is_echoed(client):
    response = await client.get("/healthcheck", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_a_fast_route_echoes_the_request_id_too(client, auth):
    response = await client.post(
        "/api/v1/code/redeem", json={}, headers={**auth, "X-Request-ID": "abc-456"}
    )
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "abc-456"


async def test_a_request_without_an_id_gets_a_new_one_each(client):
    first = (await client.get("/healthcheck")).headers["x-request-id"]
    second = (await client.get("/healthcheck")).headers["x-request-id"]
    assert first
    assert first != second


@pytest.mark.parametrize("given", ["two words", "x" * 129, "line\u00e9"])
async def test_a_request_id_that_could_forge_a_log_line_is_replaced(client, given):
    response = await client.get("/healthcheck", headers={"X-Request-ID": given.encode("latin-1")})
    assert response.headers["x-request-id"] not in ("", given)


def test_a_line_logged_during_a_request_carries_its_request_id():
    record = logging.LogRecord("promos.codes", logging.WARNING, __file__, 1, "slow", None, None)
    token = REQUEST_ID.set(b"req-7")
    try:
        line = orjson.loads(JSONFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert (line["level"], line["message"], line["request_id"]) == ("warning", "slow", "req-7")


# secrets


def test_a_get_code_secret_in_any_line_is_masked():
    secret = "s3cret-of-user-2341"
    path = f"/discounts/api/v1.0/get_code/2341/{secret}/2"
    failure = RuntimeError(f"lookup failed for {path}")
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "on %s", (path,), (RuntimeError, failure, None)
    )
    for formatter in (JSONFormatter(), TextFormatter()):
        text = formatter.format(record)
        assert secret not in text
        assert "get_code/2341/***/2" in text


async def test_the_log_holds_no_password_token_key_or_secret(
    captured, client, database, clock, api_key
):
    password = "a person's sign-in password"
    await make_user(database, username="ann", password=password, role="admin", now=clock())
    basic = "Basic " + base64.b64encode(f"ann:{password}".encode()).decode()
    brand_secret = "brand-user-secret-0123"
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id="2341", secret=brand_secret, now=clock())
    subscription_secret = "subscriber's own signing secret"

    signed_in = await client.post("/v1/auth/tokens", json={"login": "ann", "password": password})
    token = signed_in.json()["token"]
    await client.post("/v1/auth/tokens", json={"login": "ann", "password": password + "!"})
    await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    await client.get("/v1/auth/me", headers={"X-API-Key": api_key})
    await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {api_key}x"})
    await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": subscription_secret},
        headers={"Authorization": basic},
    )
    await client.post(
        "/discounts/api/v1.0/generate",
        json={"brand_id": 2, "number_of_codes": 3},
        headers={"Authorization": basic},
    )
    await client.get(f"/discounts/api/v1.0/get_code/2341/{brand_secret}/2")
    await client.get(f"/discounts/api/v1.0/get_code/2341/{brand_secret}x/2")
    await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    server = [line for line in captured.lines() if not line["logger"].startswith("httpx")]
    assert any("created the first admin user" in line["message"] for line in server)
    assert len(captured.access_lines()) == 10
    routes = {line["route"] for line in captured.access_lines()}
    assert "/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}" in routes
    for secret in (
        password,
        token,
        api_key,
        basic.removeprefix("Basic "),
        brand_secret,
        subscription_secret,
        METRICS_TOKEN,
        ADMIN_PASSWORD,
        WEBHOOK_SECRET,
    ):
        # The test's own HTTP client logs the URLs it asks for; the server never does.
        assert not any(secret in orjson.dumps(line).decode() for line in server), secret


# database errors: a statement's values never reach the log

SUBSCRIBER_SECRET = "subscriber-secret-5f0c2e91"
RECEIVER_KEY = "receiver-key-81d3a7"
# Past 64 bits: neither SQLite nor asyncpg can take it as a parameter.
TOO_LARGE = 1180591620717411315769


@pytest.fixture
async def one_subscription_per_secret(database: Database) -> AsyncIterator[None]:
    """A unique index the app does not expect: a second subscription with one secret fails,
    and PostgreSQL's error quotes the secret (``DETAIL: Key (secret)=(...) already exists``)."""
    async with database.begin() as conn:
        await conn.execute(
            text("CREATE UNIQUE INDEX one_per_secret ON webhook_subscriptions (secret)")
        )
    yield
    async with database.begin() as conn:
        await conn.execute(text("DROP INDEX one_per_secret"))


async def test_a_failing_statement_logs_its_route_but_none_of_its_values(
    captured, client, admin_auth, one_subscription_per_secret
):
    url = f"http://127.0.0.1:9/hooks?key={RECEIVER_KEY}"
    subscription = {"url": url, "events": ["*"], "secret": SUBSCRIBER_SECRET}
    first = await client.post("/v1/webhooks", json=subscription, headers=admin_auth)
    again = await client.post("/v1/webhooks", json=subscription, headers=admin_auth)

    assert (first.status_code, again.status_code) == (201, 500)
    [error] = [line for line in captured.lines() if line["level"] == "error"]
    assert error["message"] == "unhandled error on POST /v1/webhooks"
    assert "IntegrityError" in error["exception"]
    assert "INSERT INTO webhook_subscriptions" in error["exception"]  # the SQL, not its values
    for value in (SUBSCRIBER_SECRET, RECEIVER_KEY, url):
        assert value not in captured.text(), value


async def test_a_value_the_driver_cannot_take_is_not_logged(captured, database):
    """asyncpg quotes such a value in its own message ("invalid input for query argument $1:
    ..."), through SQLAlchemy and through ``DriverReads`` (PostgreSQL) alike."""
    statement = select(offer_players.c.player_id).where(
        offer_players.c.claim_count == bindparam("count")
    )
    log = logging.getLogger("promos.test")
    async with database.begin() as conn:
        with pytest.raises(Exception) as through_sqlalchemy:
            await conn.execute(statement, {"count": TOO_LARGE})
    log.error("through SQLAlchemy", exc_info=through_sqlalchemy.value)
    if database.reads is not None:
        with pytest.raises(Exception) as on_the_driver:
            await database.reads.fetch(statement, {"count": TOO_LARGE})
        log.error("on the driver", exc_info=on_the_driver.value)

    logged = [line for line in captured.lines() if line["logger"] == "promos.test"]
    assert len(logged) == (1 if database.reads is None else 2)
    assert all(line["exception"] for line in logged)
    assert str(TOO_LARGE) not in captured.text()


def test_a_database_error_is_logged_by_its_type_sqlstate_and_names():
    error = asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
    error.sqlstate, error.constraint_name, error.table_name = "23505", "uq_codes_code", "codes"
    error.detail = "Key (code)=(SECRET-CODE) already exists."

    text = format_exception(error)

    assert text == (
        "asyncpg.exceptions.UniqueViolationError: [text withheld: it may quote values] "
        "sqlstate 23505, constraint_name uq_codes_code, table_name codes"
    )


def test_what_caused_a_database_error_is_withheld_too():
    cause = ValueError("invalid UUID 'SECRET-VALUE'")  # not on the line that raises it
    try:
        try:
            raise cause
        except ValueError as caught:
            raise asyncpg.DataError("invalid input for query argument $1") from caught
    except asyncpg.DataError as error:
        text = format_exception(error)

    assert "SECRET-VALUE" not in text
    assert text.count("Traceback (most recent call last):") == 2
    assert "The above exception was the direct cause of the following exception:" in text


def test_other_errors_are_logged_as_python_prints_them():
    with pytest.raises(KeyError) as raised:
        {}["batch_id"]

    printed = "".join(traceback.format_exception(raised.value)).rstrip()
    assert format_exception(raised.value) == printed


# format


def test_a_terminal_gets_text_and_anything_else_json(tmp_path: Path):
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w") as terminal, (tmp_path / "log").open("w") as file:
            assert chosen_format("auto", terminal) == "text"
            assert chosen_format("auto", file) == "json"
            assert chosen_format("json", terminal) == "json"
            assert chosen_format("text", file) == "text"
    finally:
        os.close(primary)


def test_a_text_access_line_reads_as_a_sentence(capsys):
    AccessLog("text").write(("GET", "/v1/batches", 200, 1.53, b"req-1", "user:3"))
    line = capsys.readouterr().err
    assert line.endswith(" INFO    promos.access: GET /v1/batches 200 1.5 ms [req-1] by user:3\n")
