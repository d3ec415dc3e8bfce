"""Where Promos keeps its embedded database unless told otherwise, from any working directory.

One place per user, the XDG base directory for data (as platformdirs has it on Linux), so that
``promos serve`` and every other command agree on it wherever each is started: a database
relative to the working directory once let ``promos demo`` make a key in one file and the
server read another. The same rule on every system: the path is printed and documented once.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url


def data_directory() -> Path:
    """``$XDG_DATA_HOME/promos``, or ``~/.local/share/promos``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG specification: a relative path there is invalid and is to be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "promos"
    try:
        home = Path.home()
    except RuntimeError:
        raise ValueError(
            "PROMOS_DATABASE_URL is not set and there is no place for the default database: "
            "neither HOME nor XDG_DATA_HOME is set"
        ) from None
    return home / ".local" / "share" / "promos"


def default_database_url() -> str:
    """The embedded SQLite database that every command and the server use by default."""
    return f"sqlite:///{data_directory() / 'promos.db'}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    return Path(name)


def make_default_directory(url: str) -> None:
    """Create the default database's directory (yours alone) if ``url`` is in it.

    Only that one: a path given in PROMOS_DATABASE_URL must be in a directory that exists, so
    that a mistyped one fails instead of growing a tree somewhere unexpected.
    """
    path = sqlite_file(url)
    if path is not None and not path.parent.exists() and path.parent == data_directory():
        path.parent.mkdir(mode=0o700, parents=True)


def describe(url: str) -> str:
    """Where a database URL points, for people: a SQLite file's absolute path, or the URL
    without its password."""
    path = sqlite_file(url)
    if path is not None:
        return f"SQLite file {path.absolute()}"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return "SQLite in memory"
    plain = parsed.set(drivername=parsed.get_backend_name())
    return plain.render_as_string(hide_password=True)
