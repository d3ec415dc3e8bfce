"""Run uvicorn as ``uvicorn.run`` does, with a supervisor that stops listening at once.

uvicorn's multi-worker supervisor keeps its copy of the listening socket open until every
worker has finished its requests. Meanwhile the kernel still completes new connections
into a backlog that nobody serves: a client (or nginx, which would have tried the next
server on a refused connection) waits there, then is reset. Ours closes its copy first, so
that once the workers close theirs, new connections are refused.
"""

from __future__ import annotations

import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

STARTUP_FAILURE = 3  # uvicorn's exit status when the app could not start


def run_server(config: uvicorn.Config) -> None:
    """Serve until SIGTERM or SIGINT: in this process, or in ``config.workers`` processes."""
    try:
        if config.workers > 1:
            _Supervisor(config, sockets=[config.bind_socket()]).run()
            return
        server = uvicorn.Server(config)
        server.run()
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled once it has shut down; that is the exit.
        return
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, closing its listening socket before it stops the workers."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
