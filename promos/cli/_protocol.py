"""uvicorn's httptools protocol, guarded against clients that send too much or too slowly.

httptools (llhttp) sets no limit on a request's head, and uvicorn no timeout on reading one:
a client could send headers of any size (held in memory until they end), or hold a
connection open by sending a byte now and then. ``GuardedHttpTools`` adds, per connection:

- a limit on the head's size (request line and headers) and on the number of headers: 431,
  then the connection is closed, before the app sees the request;
- a head timeout, from the connection's first moment (or the next request's first byte on a
  kept-alive connection) to the end of the head: 408 and close (a connection that sent
  nothing is just closed);
- a body timeout: a body may pause at most that long, and must average the minimum rate once
  that long has passed (time when Promos itself holds the body back, because the app has not
  read what came or has not yet asked for it with ``100 Continue``, does not count). Then the
  connection is closed: the app may already be answering, so nothing more can be said.

Timers are armed only for a head or body that does not arrive in one read (and once for a
new connection), so a request that comes in one piece costs no timer and no clock reading.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from promos.settings import Settings

log = logging.getLogger(__name__)

# What a head costs besides its method, target and fields: " HTTP/1.1\r\n", the blank line,
# and ": " and "\r\n" around each field.
_LINE_OVERHEAD = 13
_FIELD_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How much and how slowly a client may send (PROMOS_MAX_HEADER_*, PROMOS_*_TIMEOUT_*)."""

    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    body_min_rate: float = 1024.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_head_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            head_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            body_min_rate=settings.body_min_bytes_per_second,
        )


class PromosConfig(uvicorn.Config):
    """uvicorn's configuration, with the limits ``GuardedHttpTools`` enforces.

    A module-level class, so that it travels to the worker processes as uvicorn's does.
    """

    def __init__(self, *args: Any, connection_limits: ConnectionLimits, **kwargs: Any) -> None:
        kwargs["http"] = GuardedHttpTools
        super().__init__(*args, **kwargs)
        self.connection_limits = connection_limits


class _Flow(FlowControl):
    """uvicorn's flow control, telling the protocol when the app asks for a body that Promos
    was holding back (``holding``: paused, or awaiting ``100 Continue``)."""

    def __init__(self, transport: asyncio.Transport, on_wanted: Callable[[], None]) -> None:
        super().__init__(transport)
        self.holding = False
        self._on_wanted = on_wanted

    def pause_reading(self) -> None:
        self.holding = True
        super().pause_reading()

    def resume_reading(self) -> None:
        # uvicorn calls this whenever the app waits for the body (and after each response).
        if self.holding:
            self.holding = False
            self._on_wanted()
        super().resume_reading()


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with head limits and read timeouts (see the module)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = getattr(config, "connection_limits", None)
        self._limits = limits if isinstance(limits, ConnectionLimits) else ConnectionLimits()
        self._max_head, self._max_headers = self._limits.max_head_bytes, self._limits.max_headers
        self._refused = False
        self._read_size = 0  # the read being parsed
        # The head of the next request: whether one is awaited, whether it has begun, the
        # reads known to hold nothing but it.
        self._in_head = True
        self._head_begun = False
        self._heads_done = 0
        self._head_started = 0.0
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None
        # The body of the current request while it comes: from when it is timed, what came
        # since (whole reads of it), when the last read came.
        self._in_body = False
        self._body_since = 0.0
        self._body_got = 0
        self._body_last = 0.0
        self._body_timer: TimerHandle | None = None
        self._flow: _Flow | None = None

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = self._flow = _Flow(transport, on_wanted=self._body_wanted)
        self._head_started = self.loop.time()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        heads_before = self._heads_done
        # Awaiting a head (or in one), this read starts with head bytes; in a body, with body.
        whole_read_in_head, whole_read_in_body = self._in_head, self._in_body
        self._read_size = len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._head_begun:
            if whole_read_in_head and self._heads_done == heads_before:
                # All of this read was head, which the parser holds until the head ends.
                self._head_bytes += len(data)
                if self._head_bytes > self._max_head:
                    self._refuse_head()
                    return
            if self._head_timer is None:
                self._head_started = self.loop.time()
                self._arm_head_timer()
        elif self._in_body:
            if self._body_timer is None:
                # The body goes on past this read: from now on it is timed.
                self._body_since = self._body_last = self.loop.time()
                self._body_got = 0
                self._arm_body_timer(self._limits.body_timeout)
            elif whole_read_in_body:
                self._body_got += len(data)
                self._body_last = self.loop.time()

    # --- the parser's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_begun = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if len(self.headers) > self._max_headers or (
            # What arrived since the head began may hold more than the head: then count it.
            self._head_bytes + self._read_size > self._max_head and self._head_too_large()
        ):
            self._refuse_head()
            return
        self._in_head = self._head_begun = False
        self._heads_done += 1
        if self._head_timer is not None:
            self._cancel_head_timer()
        self._in_body = True
        if self.expect_100_continue and self._flow is not None:
            self._flow.holding = True  # the client waits to be asked
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_body = False
        if self._body_timer is not None:
            self._cancel_body_timer()
        self._in_head = True
        super().on_message_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    # --- the head ----------------------------------------------------------------------------

    def _head_too_large(self) -> bool:
        size = len(self.parser.get_method()) + len(self.url) + _LINE_OVERHEAD
        size += sum(len(name) + len(value) + _FIELD_OVERHEAD for name, value in self.headers)
        return size > self._max_head

    def _arm_head_timer(self) -> None:
        deadline = self._head_started + self._limits.head_timeout
        self._head_timer = self.loop.call_at(deadline, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self._refused or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # Pipelined behind a response still being made: Promos, not the client, waits.
            self._head_started = self.loop.time()
            self._arm_head_timer()
            return
        log.info("closed a connection whose request head took over %s s", self._limits.head_timeout)
        if self._head_begun:
            self._answer_and_close(408, "request_timeout", "the request head came too slowly")
        else:
            self._close()

    def _refuse_head(self) -> None:
        limits = self._limits
        self._answer_and_close(
            431,
            "request_header_fields_too_large",
            f"the request line and headers may take {limits.max_head_bytes} bytes and "
            f"{limits.max_headers} header fields at most",
        )

    # --- the body ----------------------------------------------------------------------------

    def _arm_body_timer(self, delay: float) -> None:
        self._body_timer = self.loop.call_later(delay, self._body_check)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_wanted(self) -> None:
        # The app asks for the body Promos held back: from now on, what does not come is the
        # client's doing.
        if self._in_body:
            self._body_since = self._body_last = self.loop.time()
            self._body_got = 0

    def _body_check(self) -> None:
        self._body_timer = None
        if not self._in_body or self._refused or self.transport.is_closing():
            return
        limits = self._limits
        if self._flow is not None and self._flow.holding:
            self._arm_body_timer(limits.body_timeout)
            return
        now = self.loop.time()
        # Each byte buys 1/rate seconds beyond the first body_timeout; no pause is longer.
        bought = self._body_got / limits.body_min_rate
        rate_deadline = self._body_since + limits.body_timeout + bought
        pause_deadline = self._body_last + limits.body_timeout
        deadline = min(rate_deadline, pause_deadline)
        if now < deadline:
            self._arm_body_timer(deadline - now)
            return
        log.info(
            "closed a connection whose request body came too slowly (%s bytes in %.1f s)",
            self._body_got,
            now - self._body_since,
        )
        self._close()

    # --- refusing ------------------------------------------------------------------------------

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        """Answer before the app has seen the request, if no response is being written."""
        self._refused = True
        self._cancel_timers()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._close()  # a pipelined head: the response in progress cannot be cut into
            return
        body = orjson.dumps({"error": {"code": code, "message": message, "details": None}})
        head = [f"HTTP/1.1 {status} {_REASONS[status]}\r\n".encode()]
        defaults = self.server_state.default_headers
        head.extend(name + b": " + value + b"\r\n" for name, value in defaults)
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _close(self) -> None:
        self._refused = True
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
