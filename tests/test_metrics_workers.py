"""``promos serve --workers 2``: one scrape sums both workers; every line on stderr is JSON.

A real server (SQLite, its own file) in a subprocess, as in production; and the directory that
``promos serve`` prepares for the workers' metrics files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from promos.observability.multiproc import VARIABLE, metrics_directory
from tests._servers import running_servers, server_env

TOKEN = "scrape-token-0123456789abcdef"
SQLITE_POOL_SIZE = 5  # SQLAlchemy's default pool for a SQLite file, per worker
REQUESTS = 24
WAIT_SECONDS = 15.0


def scrape(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_a_scrape_sums_the_metrics_of_every_worker(tmp_path: Path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"an earlier run's file")  # unreadable if kept
    env = server_env(
        f"sqlite:///{tmp_path / 'promos.db'}",
        PROMOS_WORKERS="2",
        PROMOS_METRICS_TOKEN=TOKEN,
        PROMOS_LOG_LEVEL="info",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    with running_servers(1, env, tmp_path) as [server]:
        # A new connection each: the kernel hands connections to either worker.
        for _ in range(REQUESTS):
            with httpx.Client(base_url=server.url, timeout=5.0) as one:
                assert one.get("/v1/auth/me").status_code == 401
        labels = frozenset({"method": "GET", "route": "/v1/auth/me", "status": "401"}.items())
        counted = ("promos_http_request_duration_seconds_count", labels)
        pools = ("promos_db_pool_size", frozenset())
        with httpx.Client(base_url=server.url, timeout=5.0) as http:
            deadline = time.monotonic() + WAIT_SECONDS
            samples = scrape(http)
            # Each worker adds its pool once its startup has finished, and its requests within
            # a second (FLUSH_SECONDS) of serving them.
            while samples[pools] < 2 * SQLITE_POOL_SIZE or samples.get(counted) != REQUESTS:
                assert time.monotonic() < deadline, f"the workers' sum never came: {samples}"
                time.sleep(0.1)
                samples = scrape(http)

        assert samples[counted] == REQUESTS
        assert samples[pools] == 2 * SQLITE_POOL_SIZE
        assert not (directory / "counter_1.db").exists()
        assert len({path.name.rsplit("_", 1)[1] for path in directory.glob("*.db")}) >= 2

    lines = [orjson.loads(line) for line in server.log.read_text().splitlines() if line]
    assert {"uvicorn.error", "promos.access"} <= {line["logger"] for line in lines}
    assert TOKEN not in server.log.read_text()


def test_one_worker_keeps_its_metrics_in_memory(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with metrics_directory(1) as directory:
        assert directory is None
        assert VARIABLE not in os.environ


def test_several_workers_get_a_fresh_directory_removed_after(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with metrics_directory(2) as directory:
        assert directory is not None
        assert directory.is_dir()
        assert os.environ[VARIABLE] == str(directory)
        assert list(directory.iterdir()) == []
    assert not directory.exists()
    assert VARIABLE not in os.environ


def test_a_given_directory_is_emptied_of_other_processes_files_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    own = tmp_path / f"counter_{os.getpid()}.db"
    own.write_bytes(b"this process's")
    with metrics_directory(4) as directory:
        assert directory == tmp_path
        assert [path.name for path in tmp_path.iterdir()] == [own.name]
    assert tmp_path.is_dir()
    assert os.environ[VARIABLE] == str(tmp_path)
