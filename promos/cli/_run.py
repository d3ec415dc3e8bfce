"""Running one async unit of work against the configured database, for CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from promos import migrate
from promos.db import Database
from promos.errors import PromosError
from promos.settings import InvalidSettings, Settings, from_environment

T = TypeVar("T")

# sysexits' EX_CONFIG: a supervisor can tell a configuration mistake (no use restarting) from
# a crash (systemd: RestartPreventExitStatus=78).
EX_CONFIG = 78


class BadSettings(click.ClickException):
    """Each bad setting on a line of its own, then exit with EX_CONFIG."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def show(self, file: IO[Any] | None = None) -> None:
        for problem in self.problems:
            click.echo(f"Error: {problem}", file=file, err=True)
        click.echo("(every setting is described in docs/settings.md)", file=file, err=True)


def settings() -> Settings:
    """The settings from the environment and ``.env``, or ``BadSettings`` naming each bad one
    (a value that may be a secret is never echoed back)."""
    try:
        return from_environment()
    except InvalidSettings as exc:
        raise BadSettings(exc.problems) from None


def run(work: Callable[[Database, Settings], Awaitable[T]], *, prepare: bool = True) -> T:
    """Open the database, ``prepare`` it (migrate SQLite, check PostgreSQL), run ``work``."""
    config = settings()

    async def main() -> T:
        database = Database(config.database_url, pool_size=2, max_overflow=0)
        try:
            if prepare:
                await migrate.prepare(database.engine)
            return await work(database, config)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except PromosError as exc:
        raise click.ClickException(exc.message) from None
    except (OSError, SQLAlchemyError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"cannot use the database at PROMOS_DATABASE_URL: {cause}"
        ) from None
