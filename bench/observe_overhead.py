"""What ``RequestObserver`` adds to one request: request id, metrics, access line.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/observe_overhead.py [--requests 200000] [--multiprocess]

Calls a bare ASGI app (start + body, nothing else) directly, without and with the observer,
in one event loop, and prints the microseconds per request each way and their difference:
with metrics only, and with metrics and a JSON access line written to /dev/null (a real file
write per line, as on stderr). ``--multiprocess`` measures with PROMETHEUS_MULTIPROC_DIR set
(the values live in memory-mapped files, as under ``promos serve --workers N``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"wrk"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer pk_0123456789abcdef0123456789abcdef"),
    (b"content-length", b"96"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    if args.multiprocess:
        # Before prometheus_client is imported, as promos serve does for its workers.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="promos-bench-")
    asyncio.run(measure(args.requests))


async def measure(requests: int) -> None:
    # Imported here, after PROMETHEUS_MULTIPROC_DIR is set: prometheus_client reads it once.
    from promos.http.fastpath import FastRoute  # noqa: PLC0415
    from promos.observability.logs import AccessLog  # noqa: PLC0415
    from promos.observability.requests import RequestObserver  # noqa: PLC0415

    route = FastRoute("/api/v1/code/redeem")

    async def bare(scope: Any, _receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/api/v1/code/redeem", "headers": HEADERS}

    async def without() -> None:
        await bare(scope(), receive, send)

    metrics_only = RequestObserver(access_log=None, record_metrics=True)

    async def with_metrics() -> None:
        await metrics_only(scope(), receive, send, bare)

    everything = RequestObserver(access_log=AccessLog("json"), record_metrics=True)

    async def with_log() -> None:
        await everything(scope(), receive, send, bare)

    # The access lines go to stderr: to /dev/null here, a real write per line all the same.
    with Path(os.devnull).open("w") as devnull, contextlib.redirect_stderr(devnull):
        base = await per_request(without, requests)
        observed = await per_request(with_metrics, requests)
        logged = await per_request(with_log, requests)
    mode = "multiprocess (mmap files)" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "memory"
    print(f"metrics in {mode}, {requests} requests, Python {sys.version.split()[0]}")
    print(f"bare app:                        {base:6.2f} us/request")
    print(f"observer, metrics:               {observed:6.2f} us/request (+{observed - base:.2f})")
    print(f"observer, metrics + access line: {logged:6.2f} us/request (+{logged - base:.2f})")


async def per_request(call: Any, requests: int) -> float:
    for _ in range(min(requests, 10_000)):  # warm up: metric children, caches
        await call()
    started = time.perf_counter()
    for _ in range(requests):
        await call()
    return (time.perf_counter() - started) / requests * 1e6


if __name__ == "__main__":
    main()
