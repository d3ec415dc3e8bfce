"""The suite on a machine without PostgreSQL, Redis or Chromium: the tests that need one are
skipped, with one line for each in the summary, and the others still run; in CI all three are
mandatory.

Each test runs a few tests of this suite in a pytest of its own, pointed at closed ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOSED_POSTGRES = "postgresql://postgres@127.0.0.1:1/test"
CLOSED_REDIS = "redis://127.0.0.1:1/0"
NO_CHROMIUM = "/nonexistent/chromium"
# Two tests of the rate-limit stores (a memory and a redis variant each), a test on a database
# (a sqlite and a postgresql variant), one that needs PostgreSQL without being on it, and two
# browser tests.
SELECTION = [
    "tests/browser/test_console.py::test_signing_in_and_out",
    "tests/browser/test_console.py::test_a_wrong_password_is_refused_with_one_message",
    "tests/test_rate_limits.py::test_a_wait_is_exact_to_the_microsecond",
    "tests/test_rate_limits.py::test_a_refund_takes_one_request_back",
    "tests/test_smoke.py::test_a_batch_issues_a_code",
    "tests/test_settings.py::test_serve_starts_on_postgresql_once_migrated",
]


def run_selection(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PROMOS_", "PYTEST_")) and name != "CI"
    }
    env.update(
        PROMOS_TEST_POSTGRES_URL=CLOSED_POSTGRES,
        PROMOS_TEST_REDIS_URL=CLOSED_REDIS,
        PROMOS_TEST_CHROMIUM=NO_CHROMIUM,
        CI="true" if ci else "false",
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, f"--basetemp={tmp_path / 'inner'}", *SELECTION],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def summary_lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("SKIPPED ") and text in line]


def test_without_postgresql_redis_or_chromium_their_tests_are_skipped_on_one_line_each(
    tmp_path,
):
    result = run_selection(tmp_path, ci=False)

    assert result.returncode == 0, result.stdout + result.stderr
    [postgres] = summary_lines(result.stdout, "PostgreSQL is not reachable")
    [redis] = summary_lines(result.stdout, "Redis is not reachable")
    assert postgres.startswith("SKIPPED [2] ")
    assert f"at {CLOSED_POSTGRES} (PROMOS_TEST_POSTGRES_URL)" in postgres
    assert redis.startswith("SKIPPED [2] ")
    assert f"at {CLOSED_REDIS} (PROMOS_TEST_REDIS_URL)" in redis
    [chromium] = summary_lines(result.stdout, "Chromium is not installed")
    assert chromium.startswith("SKIPPED [2] ")
    assert f"at {NO_CHROMIUM}" in chromium
    assert "3 passed, 6 skipped" in result.stdout


def test_in_ci_without_postgresql_redis_or_chromium_their_tests_fail(tmp_path):
    result = run_selection(tmp_path, ci=True)

    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR ")]
    assert len([line for line in errors if "PostgreSQL is mandatory in CI" in line]) == 2
    assert len([line for line in errors if "Redis is mandatory in CI" in line]) == 2
    assert len([line for line in errors if "Chromium is mandatory in CI" in line]) == 2
    assert "3 passed, 6 errors" in result.stdout
