"""A real ``promos serve`` refuses heads that are too large and closes connections that send
too slowly (promos/cli/_protocol.py), seen from raw sockets.

The server runs with small limits and timeouts so that each test is bounded and quick: every
wait is a socket read with a deadline, which is also how a test learns that the server closed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from promos.clock import utc_now
from promos.db import Database
from tests._servers import Server, running_servers, server_env
from tests.factories.auth import make_api_key
from tests.factories.codes import make_batch

MAX_HEAD = 8 * 1024
MAX_HEADERS = 20
HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
MIN_RATE = 200  # bytes per second
# How long a test waits for the server to act on a timeout: the timeout, and room for a
# machine busy with other tests.
GRACE = 5.0


@pytest.fixture(scope="module")
def server_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The server's own SQLite file (it migrates it as it starts)."""
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('slow') / 'promos.db'}"


@pytest.fixture(scope="module")
def server(server_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: the rules tested here are the same on any database."""
    env = server_env(
        server_database,
        PROMOS_MAX_HEADER_BYTES=str(MAX_HEAD),
        PROMOS_MAX_HEADERS=str(MAX_HEADERS),
        PROMOS_HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        PROMOS_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        PROMOS_BODY_MIN_BYTES_PER_SECOND=str(MIN_RATE),
    )
    with running_servers(1, env, tmp_path_factory.mktemp("logs")) as (started,):
        yield started


def connect(server: Server) -> socket.socket:
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=GRACE)
    sock.settimeout(GRACE)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = GRACE) -> bytes:
    """Everything the server sends until it closes the connection (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server kept the connection open for {timeout} s: {received[:200]!r}")


def still_open(sock: socket.socket, seconds: float) -> bool:
    """Whether the server leaves the connection open, and says nothing, for ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False
    return False  # an answer, or the end of the connection


def read_response(sock: socket.socket) -> bytes:
    """One whole response (with a Content-Length) from a connection that stays open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def read_response_head(sock: socket.socket) -> bytes:
    """An interim response (no body), e.g. ``100 Continue``."""
    received = b""
    while not received.endswith(b"\r\n\r\n"):
        received += sock.recv(1)
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def error_of(response: bytes) -> dict[str, str]:
    error: dict[str, str] = orjson.loads(response.split(b"\r\n\r\n", 1)[1])["error"]
    return error


def healthcheck(*headers: bytes) -> bytes:
    return b"GET /healthcheck HTTP/1.1\r\nHost: promos\r\n" + b"".join(headers) + b"\r\n"


CLOSE = b"Connection: close\r\n"


# --- the head's size --------------------------------------------------------------------------


def test_a_head_within_the_limits_is_served(server):
    fields = [b"X-Field-%d: %s\r\n" % (n, b"v" * 100) for n in range(MAX_HEADERS - 3)]
    with connect(server) as sock:
        sock.sendall(healthcheck(CLOSE, *fields))

        response = read_until_closed(sock)

    assert status_of(response) == 200, response


def test_a_header_over_the_size_limit_is_431_and_the_connection_closed(server):
    with connect(server) as sock:
        sock.sendall(healthcheck(b"X-Big: " + b"a" * MAX_HEAD + b"\r\n"))

        response = read_until_closed(sock)

    assert status_of(response) == 431, response
    assert error_of(response)["code"] == "request_header_fields_too_large"


def test_a_header_that_never_ends_is_431_once_over_the_limit(server):
    # A value sent piece by piece and never finished: refused when the head outgrows the
    # limit, not when (if ever) it ends; the pieces sent are bounded.
    with connect(server) as sock:
        sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: promos\r\nX-Endless: ")
        for _ in range(4 * MAX_HEAD // 1024):
            try:
                sock.sendall(b"a" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                break

        response = read_until_closed(sock)

    assert status_of(response) == 431, response


def test_many_small_headers_over_the_size_limit_are_431(server):
    fields = [b"X-F%d: %s\r\n" % (n, b"v" * (MAX_HEAD // 10)) for n in range(12)]
    with connect(server) as sock:
        sock.sendall(healthcheck(*fields))

        response = read_until_closed(sock)

    assert status_of(response) == 431, response


def test_more_headers_than_the_limit_is_431(server):
    fields = [b"X-F%d: 1\r\n" % n for n in range(MAX_HEADERS + 1)]
    with connect(server) as sock:
        sock.sendall(healthcheck(*fields))

        response = read_until_closed(sock)

    assert status_of(response) == 431, response


# --- reading the head -------------------------------------------------------------------------


def test_a_head_that_comes_too_slowly_is_408_and_the_connection_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: promos\r\n")
        started = time.monotonic()

        response = read_until_closed(sock)

    assert status_of(response) == 408, response
    assert error_of(response)["code"] == "request_timeout"
    assert time.monotonic() - started >= HEAD_TIMEOUT * 0.9


def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_the_head_timeout(server):
    head = healthcheck(CLOSE)
    with connect(server) as sock:
        started = time.monotonic()
        for byte in head[:-1]:
            # Each byte comes well within the timeout; the whole head does not.
            if not still_open(sock, HEAD_TIMEOUT / 4):
                break
            sock.sendall(bytes([byte]))
        closed_after = time.monotonic() - started

    assert closed_after < GRACE
    assert closed_after >= HEAD_TIMEOUT * 0.9


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server):
    with connect(server) as sock:
        assert read_until_closed(sock) == b""


def test_a_kept_alive_connection_may_wait_between_requests_longer_than_the_head_timeout(server):
    with connect(server) as sock:
        sock.sendall(healthcheck())
        first = read_response(sock)
        assert status_of(first) == 200, first

        # Idle between requests: uvicorn's keep-alive timeout (5 s) applies, not this one.
        assert still_open(sock, HEAD_TIMEOUT * 3)

        sock.sendall(healthcheck(CLOSE))
        second = read_until_closed(sock)

    assert status_of(second) == 200, second


def test_hundreds_of_slow_connections_are_all_closed(server):
    with ExitStack() as stack:
        socks = [stack.enter_context(connect(server)) for _ in range(200)]
        for sock in socks:
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\n")
        started = time.monotonic()

        answers = [read_until_closed(sock) for sock in socks]

    assert {status_of(answer) for answer in answers} == {408}
    assert time.monotonic() - started < GRACE


# --- reading the body -------------------------------------------------------------------------

SIGN_IN = b"/v1/auth/tokens"
BODY = orjson.dumps({"login": "nobody", "password": "x" * 700})


def post_head(length: int) -> bytes:
    return (
        b"POST " + SIGN_IN + b" HTTP/1.1\r\nHost: promos\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_a_body_that_stops_coming_is_closed(server):
    with connect(server) as sock:
        sock.sendall(post_head(len(BODY)) + BODY[:10])
        started = time.monotonic()

        assert not still_open(sock, GRACE)

    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


def test_a_body_that_trickles_below_the_minimum_rate_is_closed(server):
    # A byte every BODY_TIMEOUT / 5 s: never a long pause, but far below MIN_RATE.
    with connect(server) as sock:
        sock.sendall(post_head(len(BODY)))
        started = time.monotonic()
        for byte in BODY:
            if not still_open(sock, BODY_TIMEOUT / 5):
                break
            sock.sendall(bytes([byte]))
        closed_after = time.monotonic() - started

    assert closed_after < GRACE
    assert closed_after >= BODY_TIMEOUT * 0.9


def test_a_body_that_keeps_the_minimum_rate_is_served(server):
    # About 2.5 x MIN_RATE for longer than BODY_TIMEOUT: slow, and still taken.
    piece = MIN_RATE // 10
    with connect(server) as sock:
        sock.sendall(post_head(len(BODY)))
        for start in range(0, len(BODY), piece):
            assert still_open(sock, piece / (MIN_RATE * 2.5))
            sock.sendall(BODY[start : start + piece])

        response = read_until_closed(sock)

    # The route's own answer to this body: nobody of that name.
    assert status_of(response) == 401, response


async def test_an_upload_sent_after_100_continue_is_taken_whole(server, server_database):
    # Promos holds this body back until the app asks for it (100 Continue), and then as long
    # as the app has not read what came (flow control): neither is the client's slowness.
    database = Database(server_database)
    try:
        key = await make_api_key(database, now=utc_now())
        batch = await make_batch(database, now=utc_now(), codes=0)
    finally:
        await database.dispose()
    rows = 100_000
    upload = httpx.Request(
        "POST",
        f"{server.url}/v1/batches/{batch.id}/codes",
        files={"file": ("codes.csv", "code\n" + "".join(f"UP-{n:08d}\n" for n in range(rows)))},
    )
    body = upload.read()
    head = (
        f"POST /v1/batches/{batch.id}/codes HTTP/1.1\r\nHost: promos\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: {upload.headers['content-type']}\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head.encode())
        assert read_response_head(sock).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)

        response = read_until_closed(sock, timeout=60)

    assert status_of(response) == 201, response[:500]
    assert orjson.loads(response.split(b"\r\n\r\n", 1)[1])["added"] == rows
