"""Settings from the environment, and what ``promos serve`` makes of the database it is given."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
import uvicorn
from click.testing import CliRunner, Result
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from promos import migrate
from promos.app import create_app
from promos.cli import main
from promos.cli._run import EX_CONFIG
from promos.datadir import data_directory
from promos.db import Database
from promos.settings import Settings, from_environment
from tests.conftest import PG_URL


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing configured, whatever the shell running the tests has set; the default database
    is this test's own."""
    for name in list(os.environ):
        if name.startswith("PROMOS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    # No .env of the checkout the tests run from, either.
    monkeypatch.chdir(tmp_path)


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
                "worker_healthcheck": config.timeout_worker_healthcheck,
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


def test_the_default_database_is_promos_db_in_the_xdg_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    url = make_url(Settings().database_url)

    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "data" / "promos" / "promos.db")


def test_without_xdg_data_home_the_default_database_is_in_local_share_of_home(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    url = make_url(Settings().database_url)

    assert url.database == str(tmp_path / ".local" / "share" / "promos" / "promos.db")


def test_a_relative_xdg_data_home_is_ignored_as_the_specification_says(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    monkeypatch.setenv("HOME", str(tmp_path))

    assert data_directory() == tmp_path / ".local" / "share" / "promos"


def test_the_default_database_is_the_same_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    from_a = Settings().database_url
    monkeypatch.chdir(tmp_path / "b")

    assert Settings().database_url == from_a


def test_with_nothing_configured_migrate_creates_the_default_database_not_one_in_the_folder(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)

    result = promos("migrate")

    assert result.exit_code == 0, result.output
    assert (data_directory() / "promos.db").is_file()
    assert not (tmp_path / "promos.db").exists()


def test_the_default_databases_directory_is_made_for_its_user_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    result = promos("migrate")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "promos").stat().st_mode & 0o777 == 0o700


def test_the_directory_of_a_database_given_in_the_url_is_never_made(tmp_path):
    # A mistyped path fails (SQLite cannot open it) instead of growing a tree somewhere.
    Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'promos.db'}")

    assert not (tmp_path / "missing").exists()


def test_without_home_or_xdg_data_home_a_clear_error_asks_for_the_database_url(monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(Path, "home", _no_home)

    result = promos("migrate")

    assert result.exit_code == EX_CONFIG, (result.output, result.exception)
    assert "PROMOS_DATABASE_URL is not set" in result.output


def _no_home() -> Path:
    raise RuntimeError("Could not determine home directory.")


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
    monkeypatch.setenv("PROMOS_ADMIN_USER", "boss")
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
    assert (
        "Error: PROMOS_DATABASE_URL (or DATABASE_URL) must start with postgresql:// or sqlite:// "
        "(got mysql://)"
    ) in result.output


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
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    result = promos("serve")

    assert result.exit_code == 0, (result.output, result.exception)
    revisions = asyncio.run(revisions_of(f"sqlite+aiosqlite:///{tmp_path / 'promos/promos.db'}"))
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


def test_serve_gives_workers_the_configured_time_to_answer_their_supervisor(
    tmp_path: Path, monkeypatch, uvicorn_runs
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMOS_WORKER_HEALTHCHECK_SECONDS", "45")

    result = promos("serve", "--workers", "2")

    assert result.exit_code == 0, (result.output, result.exception)
    assert [c["worker_healthcheck"] for c in uvicorn_runs] == [45]


def test_every_setting_is_documented_in_docs_settings_md():
    documented = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    names = [
        alias
        for field in Settings.model_fields.values()
        for alias in field.validation_alias.choices  # type: ignore[union-attr]
        if isinstance(alias, str) and alias.startswith("PROMOS_")
    ]

    assert [name for name in names if f"`{name}`" not in documented] == []


def test_serve_options_override_the_environment(tmp_path: Path, monkeypatch, uvicorn_runs):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMOS_PORT", "9000")

    result = promos("serve", "--port", "9100", "--workers", "2")

    assert result.exit_code == 0, (result.output, result.exception)
    assert [(c["port"], c["workers"]) for c in uvicorn_runs] == [(9100, 2)]


def test_serve_prints_where_to_go_and_which_database_at_startup(uvicorn_runs, caplog):
    caplog.set_level(logging.INFO, logger="promos")

    result = promos("serve", "--port", "9100")

    assert result.exit_code == 0, (result.output, result.exception)
    assert "starting at http://127.0.0.1:9100" in caplog.text
    assert "Console: http://127.0.0.1:9100/admin" in caplog.text
    assert "API docs: http://127.0.0.1:9100/docs" in caplog.text
    assert f"database: SQLite file {data_directory() / 'promos.db'}" in caplog.text


def test_serve_does_not_announce_a_console_turned_off(uvicorn_runs, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="promos")
    monkeypatch.setenv("PROMOS_CONSOLE", "false")

    result = promos("serve", "--port", "9100")

    assert result.exit_code == 0, (result.output, result.exception)
    assert "API docs: http://127.0.0.1:9100/docs" in caplog.text
    assert "/admin" not in caplog.text


def test_serve_on_every_address_prints_the_loopback_url(monkeypatch, uvicorn_runs, caplog):
    monkeypatch.setenv("PROMOS_HOST", "0.0.0.0")  # noqa: S104
    caplog.set_level(logging.INFO, logger="promos")

    promos("serve")

    assert "API docs: http://127.0.0.1:8000/docs" in caplog.text


def test_serve_prints_a_postgresql_database_without_its_password(
    empty_postgres_url, uvicorn_runs, caplog
):
    url = make_url(empty_postgres_url).set(password="s3cret-pw")  # trust: any password works
    env = {"PROMOS_DATABASE_URL": url.render_as_string(hide_password=False)}
    assert promos("migrate", env=env).exit_code == 0
    caplog.set_level(logging.INFO, logger="promos")

    promos("serve", env=env)

    assert f"database: postgresql://postgres:***@{url.host}:{url.port}/{url.database}" in (
        caplog.text
    )
    assert "s3cret-pw" not in caplog.text


def test_serve_says_once_that_the_admin_variables_are_ignored(uvicorn_runs, caplog):
    env = {"PROMOS_ADMIN_USER": "boss", "PROMOS_ADMIN_PASSWORD": "a long password"}
    made = promos("users", "create", "--username", "first", "--password", "a long password")
    assert made.exit_code == 0, made.output

    result = promos("serve", env=env)

    assert result.exit_code == 0, (result.output, result.exception)
    ignored = [r for r in caplog.records if "PROMOS_ADMIN_PASSWORD are ignored" in r.getMessage()]
    assert [r.levelno for r in ignored] == [logging.WARNING]


def test_a_key_made_by_demo_in_one_folder_works_with_the_server_started_in_another(
    tmp_path, monkeypatch
):
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    made = promos("demo", "--codes", "3")
    key = re.search(r"API key \(shown once\): (\S+)", made.output)
    assert key is not None, made.output
    monkeypatch.chdir(tmp_path / "there")

    status = asyncio.run(_get("/api/v1/batches", key.group(1)))

    assert status == 200


async def _get(path: str, key: str) -> int:
    """GET ``path`` with ``key`` from an app with the settings a server started here gets."""
    app = create_app(from_environment())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            response = await http.get(path, headers={"Authorization": f"Bearer {key}"})
    return response.status_code


# --- bad settings: one line each, and no server -----------------------------------------

BAD_SETTINGS = [
    # (command, variable, value, what the line says)
    ("serve", "PROMOS_ADMIN_PASSWORD", "short", "must be 8 characters or more"),
    ("serve", "PROMOS_PORT", "0", "must be a whole number from 1 to 65535"),
    ("serve", "PROMOS_LOG_LEVEL", "loud", "must be one of debug, info, warning, error, critical"),
    ("migrate", "PROMOS_WORKERS", "many", "must be a whole number from 1 to 256"),
    ("demo", "PROMOS_METRICS", "maybe", "must be true or false"),
    ("worker", "PROMOS_WEBHOOK_SECRET", "too short", "must be 16 characters or more"),
    ("api-keys", "PROMOS_REDIS_URL", "http://cache:6379", "must be a redis://, rediss:// or"),
]


@pytest.mark.parametrize(("command", "name", "value", "says"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it_and_what_it_may_be(
    uvicorn_runs, command, name, value, says
):
    args = {"demo": ["demo"], "worker": ["worker", "--once"]}.get(command, [command])
    if command == "api-keys":
        args = ["api-keys", "create", "--name", "svc"]
    env = {name: value}
    if name == "PROMOS_ADMIN_PASSWORD":
        env["PROMOS_ADMIN_USER"] = "boss"

    result = promos(*args, env=env)

    assert result.exit_code == EX_CONFIG, (result.output, result.exception)
    [line] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert line.startswith(f"Error: {name} {says}")
    assert "Traceback" not in result.output
    assert uvicorn_runs == []


def test_every_bad_setting_gets_a_line_of_its_own():
    env = {"PROMOS_PORT": "0", "PROMOS_WORKERS": "many", "PROMOS_LOG_FORMAT": "xml"}

    result = promos("migrate", env=env)

    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        'Error: PROMOS_PORT must be a whole number from 1 to 65535, not "0"',
        'Error: PROMOS_WORKERS must be a whole number from 1 to 256, not "many"',
        'Error: PROMOS_LOG_FORMAT must be one of auto, json, text, not "xml"',
    ]


def test_a_bad_secret_is_never_echoed_back():
    result = promos(
        "migrate", env={"PROMOS_ADMIN_USER": "boss", "PROMOS_ADMIN_PASSWORD": "hunter2"}
    )

    assert result.exit_code == EX_CONFIG
    assert "PROMOS_ADMIN_PASSWORD" in result.output
    assert "hunter2" not in result.output


def test_a_seed_alias_is_named_beside_the_promos_variable():
    result = promos("migrate", env={"OFFERS_CACHE_MAXAGESECONDS": "-1"})

    assert (
        "Error: PROMOS_OFFERS_CACHE_MAX_AGE_SECONDS (or OFFERS_CACHE_MAXAGESECONDS) must be a "
        "whole number from 0 to 31536000"
    ) in result.output


def test_the_admin_user_without_a_password_is_refused(uvicorn_runs):
    result = promos("serve", env={"PROMOS_ADMIN_USER": "boss"})

    assert result.exit_code == EX_CONFIG, (result.output, result.exception)
    assert "PROMOS_ADMIN_USER and PROMOS_ADMIN_PASSWORD go together" in result.output
    assert uvicorn_runs == []


def test_an_admin_name_the_api_would_refuse_is_refused_at_startup(uvicorn_runs):
    env = {"PROMOS_ADMIN_USER": "the boss", "PROMOS_ADMIN_PASSWORD": "a long password"}

    result = promos("serve", env=env)

    assert result.exit_code == EX_CONFIG, (result.output, result.exception)
    assert "PROMOS_ADMIN_USER must be 1 to 255 characters, without spaces or colons" in (
        result.output
    )


def test_the_log_level_may_be_written_in_capitals(monkeypatch):
    monkeypatch.setenv("PROMOS_LOG_LEVEL", "WARNING")

    assert Settings().log_level == "warning"


# --- .env -----------------------------------------------------------------------------


def test_a_dotenv_file_in_the_working_directory_sets_what_the_environment_does_not(tmp_path):
    (tmp_path / ".env").write_text("PROMOS_PORT=9001\nPROMOS_WORKERS=3\n", encoding="utf-8")

    settings = from_environment()

    assert (settings.port, settings.workers) == (9001, 3)


def test_the_environment_wins_over_the_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PROMOS_PORT=9001\n", encoding="utf-8")
    monkeypatch.setenv("PROMOS_PORT", "9002")

    assert from_environment().port == 9002


def test_a_dotenv_file_may_use_the_seeds_names_quotes_and_comments(tmp_path):
    (tmp_path / ".env").write_text(
        "# the referral API's own variable\nDATABASE_URL='postgresql://u:p@db/promos'\n",
        encoding="utf-8",
    )

    assert from_environment().database_url == "postgresql+asyncpg://u:p@db/promos"


def test_other_programs_lines_in_the_dotenv_file_are_ignored(tmp_path):
    (tmp_path / ".env").write_text("SECRET_KEY=abc\nDEBUG=1\nPROMOS_PORT=9001\n", "utf-8")

    assert from_environment().port == 9001


def test_serve_takes_its_settings_from_the_dotenv_file(tmp_path, uvicorn_runs):
    (tmp_path / ".env").write_text("PROMOS_PORT=9003\n", encoding="utf-8")

    result = promos("serve")

    assert result.exit_code == 0, (result.output, result.exception)
    assert [c["port"] for c in uvicorn_runs] == [9003]


def test_a_bad_setting_in_the_dotenv_file_is_one_clear_line_too(tmp_path):
    (tmp_path / ".env").write_text("PROMOS_PORT=eighty\n", encoding="utf-8")

    result = promos("migrate")

    assert result.exit_code == EX_CONFIG
    assert 'Error: PROMOS_PORT must be a whole number from 1 to 65535, not "eighty"' in (
        result.output
    )


def test_settings_made_in_code_do_not_read_the_dotenv_file(tmp_path):
    # Tests and embedders pass what they mean; only the commands and the server read .env.
    (tmp_path / ".env").write_text("PROMOS_PORT=9001\n", encoding="utf-8")

    assert Settings().port == 8000
