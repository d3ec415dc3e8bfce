"""Real ``promos serve`` processes for the tests that need several OS processes at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_SECONDS = 60.0  # three servers starting at once on a busy 2-core machine took over 20 s
STOP_SECONDS = 10.0
START_ATTEMPTS = 3  # a server whose port was taken meanwhile is started again on another
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a server process: this test's database, and small pools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOS_")}
    env.update(
        PROMOS_DATABASE_URL=database_url,
        PROMOS_LOG_LEVEL="warning",
        PROMOS_AUTH_CACHE_SECONDS="60",
        # Three servers and the test's own app share one PostgreSQL (max_connections 100).
        PROMOS_DB_POOL_SIZE="6",
        PROMOS_DB_MAX_OVERFLOW="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


@contextmanager
def running_servers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[Server]]:
    """Start ``count`` servers, wait until each answers its healthcheck, stop them all after."""
    with ExitStack() as stack:
        servers = [_start(n, env, log_dir, stack) for n in range(count)]
        for n in range(count):
            attempts = 1
            while not _wait_healthy(servers[n]):
                # Another process (another pytest-xdist worker) bound the port that free_port
                # had found free before this server could: start it again on another one.
                if attempts == START_ATTEMPTS:
                    raise RuntimeError(f"server {n} found its port taken {attempts} times")
                servers[n] = _start(n, env, log_dir, stack)
                attempts += 1
        yield servers


def _start(n: int, env: dict[str, str], log_dir: Path, stack: ExitStack) -> Server:
    port = free_port()
    log = log_dir / f"server-{n}-{port}.log"
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        [sys.executable, "-m", "promos", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        # A group of its own: killing it takes its worker processes along (see _stop).
        start_new_session=True,
    )
    stack.callback(_stop, process)
    return Server(f"http://127.0.0.1:{port}", process, log)


def _wait_healthy(server: Server) -> bool:
    return wait_healthy(
        server.url,
        server.process,
        lambda: server.log.read_text(errors="replace"),
        seconds=STARTUP_SECONDS,
    )


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], output: Callable[[], str], *, seconds: float
) -> bool:
    """True once the server at ``url`` answers its healthcheck; False if ``process`` exited
    because its port was taken; raises, with the process's ``output``, if it exited otherwise
    or did not become healthy in time."""
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = output()
                if "address already in use" in log.lower():
                    return False
                raise RuntimeError(f"{url}: the process exited with {process.returncode}:\n{log}")
            try:
                if http.get("/healthcheck").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy within {seconds:.0f} s:\n{output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)
    # Whatever of its group is left (a worker whose supervisor was killed) goes with it.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
