"""Settings from the environment, and what ``promos serve`` makes of the database it is given."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import uvicorn
from click.testing import CliRunner, Result
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from promos import migrate
from promos.cli import main
from promos.db import Database
from promos.settings import Settings
from tests.conftest import PG_URL


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured, whatever the shell running the tests has set."""
    for name in list(os.environ):
        if name.startswith("PROMOS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for the server's run: records what ``serve`` would serve instead of blocking."""
    calls: list[dict[str, Any]] = []

    def run(config: uvicorn.Config) -> None:
        calls.append(
            {
                "app": config.app,
                "host": config.host,
                "port": config.port,
                "workers": config.workers,
                "shutdown_timeout": config.timeout_graceful_shutdown,
            }
        )

    # The module, not the click command of the same name that promos.cli exports.
    monkeypatch.setattr(importlib.import_module("promos.cli.serve"), "run_server", run)
    return calls


def promos(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def failed_cleanly(result: Result) -> bool:
    """A non-zero exit with a message, not a traceback."""
    return result.exit_code != 0 and isinstance(result.exception, SystemExit)


async def revisions_of(database_url: str) -> set[str]:
    database = Database(database_url)
    try:
        return await migrate.current_revisions(database.engine)
    finally:
        await database.dispose()


# --- defaults -------------------------------------------------------------------------


def test_the_default_database_is_a_sqlite_file_in_the_working_directory():
    url = make_url(Settings().database_url)

    assert url.get_backend_name() == "sqlite"
    assert url.database == "promos.db"


def test_with_nothing_configured_migrate_creates_promos_db_in_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)

    result = promos("migrate")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "promos.db").is_file()


def test_the_defaults_are_those_the_readme_lists():
    settings = Settings()

    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.token_ttl_seconds == 12 * 3600
    assert settings.auth_cache_seconds == 10
    assert (settings.admin_user, settings.admin_password) == (None, None)
    assert (settings.fast_path, settings.compat_ango) == (True, True)


# --- the environment ------------------------------------------------------------------


def test_promos_variables_set_the_settings(monkeypatch):
    monkeypatch.setenv("PROMOS_HOST", "0.0.0.0")  # noqa: S104
    monkeypatch.setenv("PROMOS_PORT", "9000")
    monkeypatch.setenv("PROMOS_WORKERS", "4")
    monkeypatch.setenv("PROMOS_TOKEN_TTL_SECONDS", "600")
    monkeypatch.setenv("PROMOS_AUTH_CACHE_SECONDS", "0")

    settings = Settings()

    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9000, 4)  # noqa: S104
    assert (settings.token_ttl_seconds, settings.auth_cache_seconds) == (600, 0)


def test_promos_admin_variables_set_the_bootstrap_admin(monkeypatch):
    monkeypatch.setenv("PROMOS_ADMIN_USER", "boss")
    monkeypatch.setenv("PROMOS_ADMIN_PASSWORD", "a long password")

    settings = Settings()

    assert settings.admin_user == "boss"
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() == "a long password"


def test_the_admin_password_stays_out_of_the_settings_repr(monkeypatch):
    monkeypatch.setenv("PROMOS_ADMIN_PASSWORD", "a long password")

    settings = Settings()

    assert "a long password" not in repr(settings)
    assert "a long password" not in str(settings.model_dump())


def test_promos_database_url_sets_the_database(monkeypatch):
    monkeypatch.setenv("PROMOS_DATABASE_URL", "postgresql://promos@db:5432/promos")

    assert Settings().database_url == "postgresql+asyncpg://promos@db:5432/promos"


def test_database_url_is_honoured_as_an_alias(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://referrals@db:5432/referrals")

    assert Settings().database_url == "postgresql+asyncpg://referrals@db:5432/referrals"


def test_promos_database_url_wins_over_the_alias(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://referrals@db:5432/referrals")
    monkeypatch.setenv("PROMOS_DATABASE_URL", "postgresql://promos@db:5432/promos")

    assert Settings().database_url == "postgresql+asyncpg://promos@db:5432/promos"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/promos", "postgresql+asyncpg://u:p@db:5432/promos"),
        ("postgres://u:p@db:5432/promos", "postgresql+asyncpg://u:p@db:5432/promos"),
        ("postgresql+asyncpg://u@db/promos", "postgresql+asyncpg://u@db/promos"),
        ("sqlite:///promos.db", "sqlite+aiosqlite:///promos.db"),
        ("sqlite+aiosqlite:////var/lib/promos.db", "sqlite+aiosqlite:////var/lib/promos.db"),
    ],
)
def test_a_plain_database_url_gets_the_async_driver(given, used):
    assert Settings(database_url=given).database_url == used


@pytest.mark.parametrize(
    "url",
    ["mysql://u@db/promos", "postgresql+psycopg2://u@db/promos", "promos.db", ""],
)
def test_a_database_url_of_another_scheme_is_refused(url):
    with pytest.raises(ValidationError, match=r"must start with postgresql:// or sqlite://"):
        Settings(database_url=url)


def test_the_cli_refuses_a_bad_database_url_with_a_clear_error():
    result = promos("migrate", env={"PROMOS_DATABASE_URL": "mysql://u@db/promos"})

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "PROMOS_DATABASE_URL must start with postgresql:// or sqlite://" in result.output


def test_the_cli_refusing_a_bad_database_url_does_not_print_its_password():
    result = promos("migrate", env={"PROMOS_DATABASE_URL": "mysql://promos:s3cret@db/promos"})

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "s3cret" not in result.output


@pytest.mark.parametrize(("name", "value"), [("PROMOS_PORT", "0"), ("PROMOS_WORKERS", "many")])
def test_an_invalid_value_is_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=name):
        Settings()


# --- promos serve and the database ----------------------------------------------------


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def unmigrated_postgres_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this run's own besides ``postgres_url``'s, not migrated by any
    fixture, dropped at the end: a DROP DATABASE waits for a checkpoint, once and not per test."""
    # postgres_url: skipped (or failed, in CI) as every PostgreSQL test is without a server.
    server = make_url(PG_URL).set(drivername="postgresql", database="postgres")
    dsn = server.render_as_string(hide_password=False)
    name = f"promos_empty_{uuid4().hex[:12]}"
    asyncio.run(_execute(dsn, f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_postgres_url(unmigrated_postgres_url: str) -> str:
    """A PostgreSQL database with no schema at all: whatever a test made in it is gone."""
    asyncio.run(
        _execute(unmigrated_postgres_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    )
    return unmigrated_postgres_url


@pytest.mark.postgres
def test_serve_refuses_an_unmigrated_postgresql_database(empty_postgres_url, uvicorn_runs):
    result = promos("serve", env={"PROMOS_DATABASE_URL": empty_postgres_url})

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "run `promos migrate`" in result.output
    assert uvicorn_runs == []


@pytest.mark.postgres
def test_serve_leaves_an_unmigrated_postgresql_database_unmigrated(
    empty_postgres_url, uvicorn_runs
):
    promos("serve", env={"PROMOS_DATABASE_URL": empty_postgres_url})

    async_url = Settings(database_url=empty_postgres_url).database_url
    assert asyncio.run(revisions_of(async_url)) == set()


@pytest.mark.postgres
def test_serve_starts_on_postgresql_once_migrated(empty_postgres_url, uvicorn_runs):
    env = {"PROMOS_DATABASE_URL": empty_postgres_url}
    assert promos("migrate", env=env).exit_code == 0

    result = promos("serve", env=env)

    assert result.exit_code == 0, (result.output, result.exception)
    assert [call["app"] for call in uvicorn_runs] == ["promos.app:app_from_env"]


def test_serve_refuses_an_unreachable_postgresql_with_a_clear_error(uvicorn_runs):
    result = promos("serve", env={"PROMOS_DATABASE_URL": "postgresql://promos@127.0.0.1:1/promos"})

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "database" in result.output
    assert "127.0.0.1" in result.output
    assert uvicorn_runs == []


def test_serve_with_nothing_configured_migrates_a_sqlite_file_and_serves(
    tmp_path: Path, monkeypatch, uvicorn_runs
):
    monkeypatch.chdir(tmp_path)

    result = promos("serve")

    assert result.exit_code == 0, (result.output, result.exception)
    revisions = asyncio.run(revisions_of(f"sqlite+aiosqlite:///{tmp_path / 'promos.db'}"))
    assert revisions == migrate.head_revisions()
    assert [(c["host"], c["port"], c["workers"]) for c in uvicorn_runs] == [("127.0.0.1", 8000, 1)]


def test_serve_finishes_requests_for_the_configured_shutdown_timeout(
    tmp_path: Path, monkeypatch, uvicorn_runs
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMOS_SHUTDOWN_TIMEOUT_SECONDS", "120")

    result = promos("serve")

    assert result.exit_code == 0, (result.output, result.exception)
    assert [c["shutdown_timeout"] for c in uvicorn_runs] == [120]


def test_serve_options_override_the_environment(tmp_path: Path, monkeypatch, uvicorn_runs):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMOS_PORT", "9000")

    result = promos("serve", "--port", "9100", "--workers", "2")

    assert result.exit_code == 0, (result.output, result.exception)
    assert [(c["port"], c["workers"]) for c in uvicorn_runs] == [(9100, 2)]
