"""A database outage for the app under test, on the test's own database only.

PostgreSQL: the app reaches its database through ``Relay``, a TCP relay on 127.0.0.1 that the
test owns; cut, it resets the connections it carried and every new one at once, as a server
that went down does (its port stays bound, so that nobody else is handed it meanwhile).
SQLite: the database file's folder is renamed away and the pool's open connections closed, so
that the next connection cannot open the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url

from promos.db import Database

CHUNK = 65536
THREAD_SECONDS = 5.0


class Outage(Protocol):
    url: str  # what the app is given as its database URL

    async def begin(self, database: Database) -> None: ...

    async def end(self) -> None: ...

    async def close(self) -> None: ...


class Relay:
    """127.0.0.1:<port> relayed to PostgreSQL, until ``begin`` cuts it and ``end`` restores it."""

    def __init__(self, database_url: str) -> None:
        self._target = make_url(database_url)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._down = False
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = self._target.set(host="127.0.0.1", port=port).render_as_string(
            hide_password=False
        )

    async def begin(self, database: Database) -> None:  # noqa: ARG002 - the Outage protocol
        self._cut()

    async def end(self) -> None:
        self._down = False

    async def close(self) -> None:
        self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _cut(self) -> None:
        self._down = True
        for transport in list(self._transports):
            transport.abort()  # a reset, as from a server that went away
        self._transports.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._target.host, self._target.port or 5432
            )
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, upstream_writer.transport}
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )
        self._transports -= {writer.transport, upstream_writer.transport}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


class FileGone:
    """An SQLite database whose folder is renamed away for the outage."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._away = folder.with_name(folder.name + "-away")
        self.url = f"sqlite+aiosqlite:///{folder / 'promos.db'}"

    async def begin(self, database: Database) -> None:
        self._folder.rename(self._away)
        await database.engine.dispose()  # the open connections would still reach the file

    async def end(self) -> None:
        if self._away.exists():
            self._away.rename(self._folder)

    async def close(self) -> None:
        await self.end()
        # aiosqlite answers a connection that failed to open by stopping its thread without
        # waiting for it: wait here, while this test's event loop still runs to hear it.
        for thread in threading.enumerate():
            if thread.name.endswith("(_connection_worker_thread)"):
                await asyncio.to_thread(thread.join, THREAD_SECONDS)
