"""A real HTTP receiver on 127.0.0.1 for webhook tests: records each request, answers with
the status the test sets (or is stopped, to play a receiver that is down)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from promos.events.destinations import Destinations

# Webhooks go to public addresses only, unless PROMOS_WEBHOOK_ALLOWED_HOSTS allows others: the
# receiver listens on the loopback, so the tests that deliver to it allow that.
ALLOWED_HOSTS = "127.0.0.1"
RECEIVER_DESTINATIONS = Destinations.allowing(ALLOWED_HOSTS)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver:
    """``status`` (and ``reply``, the body) is what the next requests get; ``requests`` what
    arrived, in order."""

    status: int = 200
    reply: bytes = b""
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _held: socket.socket | None = None  # the port, bound but not listening, while stopped
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again, on the same port after a ``stop``)."""
        if self._held is not None:
            self._held.close()
            self._held = None
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening: connections are refused. The port stays bound (without listening),
        so that no other process (another pytest-xdist worker) is given it before ``start``."""
        if await self._stop_listening():
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # As asyncio's listener did: the port's connections may be in TIME_WAIT.
                held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                held.bind(("127.0.0.1", self.port))
            except OSError:
                held.close()
                raise
            self._held = held

    async def close(self) -> None:
        """Stop listening, and let the port go."""
        await self._stop_listening()
        if self._held is not None:
            self._held.close()
            self._held = None

    async def _stop_listening(self) -> bool:
        if self._server is None:
            return False
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        return True

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait (bounded) until ``count`` requests have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            self._arrived.set()
            reason = "OK" if self.status < 400 else "Error"
            writer.write(
                f"HTTP/1.1 {self.status} {reason}\r\nContent-Length: {len(self.reply)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + self.reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
