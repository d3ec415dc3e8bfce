"""Where the workers of one ``promos serve`` keep their metrics, so that a scrape sums them.

No prometheus_client import here: the directory must be in the environment before any process
that records metrics imports it (uvicorn's workers are started afresh, and inherit it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """``PROMETHEUS_MULTIPROC_DIR`` for a server of ``workers`` processes, emptied first.

    The directory set in the environment is used (and kept afterwards); otherwise a server
    with more than one worker gets a temporary one, removed when it stops. One worker keeps
    its metrics in memory (None).
    """
    given = os.environ.get(VARIABLE)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        # Files of an earlier run would add its counts (and its dead workers) to this one's.
        # This process's own are kept: it may have recorded already, and serve alone.
        own = f"_{os.getpid()}.db"
        for stale in directory.glob("*.db"):
            if not stale.name.endswith(own):
                stale.unlink()
        yield directory
        return
    if workers <= 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="promos-metrics-"))
    os.environ[VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)
