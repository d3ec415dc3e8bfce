"""Browser tests: Debian's Chromium, driven by Playwright, against a real ``promos serve``.

One server per test module (SQLite in a temporary folder, a free port on 127.0.0.1) with an
admin and a sales user; a fresh browser context (no cookies) per test. Each test leaves a
screenshot of its last page in ``.screenshots/`` for a person to look at.
Without /usr/bin/chromium they are skipped (one line), unless CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests._servers import ROOT, running_servers, server_env
from tests.conftest import IN_CI, ServiceMissing

# Debian's package; another build can be named for a local run.
CHROMIUM = Path(os.environ.get("PROMOS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / ".screenshots"
ADMIN, ADMIN_PASSWORD = "ada", "admin password"
SALES, SALES_PASSWORD = "sam", "sales password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"Chromium is mandatory in CI and missing at {CHROMIUM}: .ci/run installs it")
    raise ServiceMissing(
        f"Chromium is not installed at {CHROMIUM} (apt-get install chromium): "
        "the browser tests are skipped"
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The URL of a ``promos serve`` of this module's own, with the users ``ada`` (admin)
    and ``sam`` (sales); a module's ``SERVER_SETTINGS`` (PROMOS_* variables) are added."""
    _need_chromium()
    folder = tmp_path_factory.mktemp("browser")
    settings = getattr(request.module, "SERVER_SETTINGS", {})
    env = server_env(f"sqlite:///{folder / 'promos.db'}", PROMOS_AUTH_CACHE_SECONDS="0", **settings)
    people = ((ADMIN, ADMIN_PASSWORD, "admin"), (SALES, SALES_PASSWORD, "sales"))
    for username, password, role in people:
        command = ["users", "create", "--username", username, "--password", password]
        subprocess.run(
            [sys.executable, "-m", "promos", *command, "--role", role],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    with running_servers(1, env, folder) as [running]:
        yield running.url


# Per module, not per session: while Playwright's sync API runs, its event loop is the running
# loop of this thread, and the tests of other modules (asyncio.run in their fixtures) would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    _need_chromium()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser, server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a browser context of its own (no cookies), at a laptop's size; its last
    state is saved as ``.screenshots/<test>.png``."""
    context = chromium.new_context(base_url=server, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    SCREENSHOTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    opened.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()


def sign_in(page: Page, username: str, password: str) -> None:
    """Sign in through the form, as a person does."""
    page.goto("/admin/sign-in")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin")
