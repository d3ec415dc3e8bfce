"""The ``promos`` command, run in-process against each test database.

CliRunner runs ``asyncio.run`` inside, so these tests are plain functions; they check what a
command did with a fresh ``Database`` of their own, also under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncConnection

from promos import migrate
from promos.auth import service as auth_service
from promos.cli import main
from promos.cli.demo import DEMO_CLIENT
from promos.clock import utc_now
from promos.codes import service as codes_service
from promos.codes.service import Batch, BatchStats, Rules
from promos.datadir import describe
from promos.db import Database

T = TypeVar("T")

CLIENT = UUID("6f1c8f55-2f1a-4c55-9a55-0b6f4d0e8e21")
OTHER_CLIENT = UUID("0d7cbb0e-9f3c-4a53-9d39-6d5b7f8c2a11")


@pytest.fixture(autouse=True)
def in_a_folder_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run where no .env of the checkout's can reach them."""
    monkeypatch.chdir(tmp_path)


def promos(database_url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    """Run ``promos ARGS`` with PROMOS_DATABASE_URL set to the test database."""
    return CliRunner().invoke(
        main, list(args), env={"PROMOS_DATABASE_URL": database_url, **env}, input=stdin
    )


def failed_cleanly(result: Result) -> bool:
    """A non-zero exit with a message, not a traceback."""
    return result.exit_code != 0 and isinstance(result.exception, SystemExit)


def query(database_url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(database_url)
        try:
            async with database.begin() as conn:
                return await work(conn)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def revisions_of(database_url: str) -> set[str]:
    database = Database(database_url)
    try:
        return await migrate.current_revisions(database.engine)
    finally:
        await database.dispose()


def batches(database_url: str) -> list[Batch]:
    return query(database_url, codes_service.list_batches)


def stats(database_url: str, batch: Batch) -> BatchStats:
    return query(database_url, lambda conn: codes_service.batch_stats(conn, batch.id))


def user_with_password(database_url: str, username: str, password: str) -> auth_service.User:
    return query(database_url, lambda conn: auth_service.verify_password(conn, username, password))


def users(database_url: str) -> list[auth_service.User]:
    return query(database_url, auth_service.list_users)


def api_key_principal(database_url: str, secret: str) -> auth_service.Principal:
    return query(
        database_url, lambda conn: auth_service.principal_for_api_key(conn, secret, now=utc_now())
    )


def csv_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "codes.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- users create ---------------------------------------------------------------------


def test_users_create_adds_a_user_who_can_sign_in(database_url):
    result = promos(
        database_url,
        *("users", "create", "--username", "x", "--password", "a long password"),
        *("--role", "sales"),
    )

    assert result.exit_code == 0, result.output
    assert "created sales user 'x'" in result.output
    assert user_with_password(database_url, "x", "a long password").role == "sales"


def test_users_create_makes_an_admin_by_default(database_url):
    result = promos(
        database_url, "users", "create", "--username", "x", "--password", "a long password"
    )

    assert result.exit_code == 0, result.output
    assert user_with_password(database_url, "x", "a long password").role == "admin"


def test_users_create_asks_for_the_password_twice_when_not_given(database_url):
    result = promos(
        database_url,
        *("users", "create", "--username", "x"),
        stdin="a long password\na long password\n",
    )

    assert result.exit_code == 0, result.output
    assert user_with_password(database_url, "x", "a long password").username == "x"


def test_users_create_never_prints_the_password(database_url):
    result = promos(
        database_url, "users", "create", "--username", "x", "--password", "a long password"
    )

    assert "a long password" not in result.output


def test_users_create_refuses_a_weak_password(database_url):
    result = promos(database_url, "users", "create", "--username", "x", "--password", "short")

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "at least 8 characters" in result.output
    assert users(database_url) == []


def test_users_create_refuses_a_user_that_exists(database_url):
    args = ("users", "create", "--username", "x", "--password", "a long password")
    promos(database_url, *args)

    result = promos(database_url, *args)

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "already exists" in result.output


def test_users_create_refuses_a_user_name_with_a_colon(database_url):
    # Such a user could never use HTTP Basic (user:password); the API refuses the name too.
    result = promos(
        database_url, "users", "create", "--username", "x:y", "--password", "a long password"
    )

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert users(database_url) == []


# --- api-keys create ------------------------------------------------------------------


def test_api_keys_create_prints_only_the_secret_on_stdout(database_url):
    result = promos(database_url, "api-keys", "create", "--name", "svc")

    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) == 1
    assert "not shown again" in result.stderr


def test_the_printed_api_key_authenticates(database_url):
    result = promos(database_url, "api-keys", "create", "--name", "svc")

    principal = api_key_principal(database_url, result.stdout.strip())

    assert (principal.kind, principal.name, principal.role) == ("api_key", "svc", "sales")


def test_api_keys_create_with_the_admin_role(database_url):
    result = promos(database_url, "api-keys", "create", "--name", "ops", "--role", "admin")

    assert api_key_principal(database_url, result.stdout.strip()).role == "admin"


# --- codes import ---------------------------------------------------------------------


def test_codes_import_creates_a_batch_of_the_files_codes(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\nSUMMER-2\nSUMMER-3\n")

    result = promos(
        database_url,
        *("codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)),
        *("--rules", '{"maxpercustomer": 2, "timelimit": 30}'),
    )

    assert result.exit_code == 0, result.output
    assert "3 codes imported" in result.output
    [batch] = batches(database_url)
    assert (batch.name, batch.client_id, batch.rules) == ("Summer", CLIENT, Rules(2, 30))
    assert (stats(database_url, batch).total, stats(database_url, batch).left) == (3, 3)


def test_codes_import_without_rules_makes_a_batch_without_limits(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\n")

    result = promos(
        database_url, "codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)
    )

    assert result.exit_code == 0, result.output
    assert [b.rules for b in batches(database_url)] == [Rules()]


def test_codes_import_reads_a_client_id_code_file(database_url, tmp_path):
    path = csv_file(tmp_path, f"client_id,code\n{CLIENT},SUMMER-1\n{CLIENT},SUMMER-2\n")

    result = promos(
        database_url, "codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)
    )

    assert result.exit_code == 0, result.output
    assert stats(database_url, batches(database_url)[0]).total == 2


def test_a_broken_csv_fails_naming_the_row_and_leaves_no_batch(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\nSUMMER-2,extra\nSUMMER-3\n")

    result = promos(
        database_url, "codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)
    )

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "row 3" in result.output
    assert batches(database_url) == []


def test_a_code_twice_in_the_file_fails_naming_the_row_and_leaves_no_batch(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\nSUMMER-2\nSUMMER-1\n")

    result = promos(
        database_url, "codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)
    )

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "row 4" in result.output
    assert batches(database_url) == []


def test_codes_import_keeps_each_rows_client_in_one_batch(database_url, tmp_path):
    path = csv_file(tmp_path, f"client_id,code\n{CLIENT},SUMMER-1\n{OTHER_CLIENT},SUMMER-2\n")

    result = promos(
        database_url, "codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)
    )

    assert result.exit_code == 0, result.output
    [batch] = batches(database_url)
    assert batch.client_id == CLIENT
    assert query(database_url, lambda conn: codes_service.batch_clients(conn, batch.id)) == sorted(
        [CLIENT, OTHER_CLIENT]
    )


def test_codes_import_refuses_rules_that_are_not_json(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\n")

    result = promos(
        database_url,
        *("codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)),
        *("--rules", "maxpercustomer=2"),
    )

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "--rules" in result.output
    assert batches(database_url) == []


def test_codes_import_refuses_unknown_rules_cleanly(database_url, tmp_path):
    path = csv_file(tmp_path, "code\nSUMMER-1\n")

    result = promos(
        database_url,
        *("codes", "import", path, "--batch", "Summer", "--client", str(CLIENT)),
        *("--rules", '{"max": 2}'),
    )

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "unknown rule" in result.output
    assert batches(database_url) == []


# --- demo -----------------------------------------------------------------------------


def test_demo_creates_a_batch_of_the_requested_size(database_url):
    result = promos(database_url, "demo", "--codes", "5")

    assert result.exit_code == 0, result.output
    [batch] = batches(database_url)
    assert (batch.client_id, batch.rules) == (DEMO_CLIENT, Rules(2, 30))
    assert stats(database_url, batch).total == 5
    assert str(batch.id) in result.output


def test_demo_prints_an_api_key_that_authenticates(database_url):
    result = promos(database_url, "demo", "--codes", "5")

    found = re.search(r"API key \(shown once\): (\S+)", result.output)

    assert found is not None, result.output
    assert api_key_principal(database_url, found.group(1)).role == "sales"


def test_demo_prints_commands_for_the_host_and_port_configured(database_url):
    result = promos(database_url, "demo", "--codes", "5", PROMOS_PORT="9123")

    assert result.exit_code == 0, result.output
    assert "curl -s http://127.0.0.1:9123/api/v1/code/redeem" in result.output
    assert "http://127.0.0.1:8000" not in result.output


def test_demo_on_every_address_prints_commands_for_the_loopback_one(database_url):
    result = promos(database_url, "demo", "--codes", "5", PROMOS_HOST="::", PROMOS_PORT="9123")

    assert "curl -s http://[::1]:9123/api/v1/code/redeem" in result.output


def test_demo_on_a_database_without_users_prints_a_console_admin_that_signs_in(database_url):
    result = promos(database_url, "demo", "--codes", "5")

    found = re.search(r"/admin, user (\S+), password \(shown once\): (\S+)", result.output)

    assert found is not None, result.output
    assert user_with_password(database_url, found.group(1), found.group(2)).role == "admin"


def test_demo_on_a_database_with_users_makes_no_user(database_url):
    promos(database_url, "users", "create", "--username", "ann", "--password", "a long password")

    result = promos(database_url, "demo", "--codes", "5")

    assert result.exit_code == 0, result.output
    assert "sign in as one of this database's users" in result.output
    assert [user.username for user in users(database_url)] == ["ann"]


def test_demo_names_the_database_it_wrote_to(database_url):
    result = promos(database_url, "demo", "--codes", "5")

    assert f"Database: {describe(database_url)}" in result.output


# --- migrate --------------------------------------------------------------------------


def test_migrate_brings_a_new_sqlite_database_to_the_newest_revision(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"

    result = promos(url, "migrate")

    assert result.exit_code == 0, result.output
    heads = migrate.head_revisions()
    assert f"revision {', '.join(sorted(heads))}" in result.output
    assert asyncio.run(revisions_of(url)) == heads


def test_migrate_on_a_migrated_database_changes_nothing(database_url):
    result = promos(database_url, "migrate")

    assert result.exit_code == 0, result.output
    assert f"revision {', '.join(sorted(migrate.head_revisions()))}" in result.output


def test_migrate_refuses_an_unreachable_database_with_a_clear_error():
    result = promos("postgresql://promos@127.0.0.1:1/promos", "migrate")

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "127.0.0.1" in result.output


def test_citus_distribute_on_a_database_without_citus_says_so(sqlite_template, tmp_path):
    path = tmp_path / "promos.db"
    shutil.copy(sqlite_template, path)

    result = promos(f"sqlite+aiosqlite:///{path}", "citus", "distribute")

    assert failed_cleanly(result)
    assert "no Citus extension" in result.output
