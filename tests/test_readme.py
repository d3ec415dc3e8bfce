"""The README's Quick start as a newcomer pastes it, its example output, and the docs' links."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from promos.cli import main
from tests._servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

STARTUP_SECONDS = 120.0  # `make demo`, then `make serve` until it answers, on a busy machine
COMMAND_SECONDS = 30.0
STOP_SECONDS = 15.0
START_ATTEMPTS = 3  # a port another process took meanwhile: paste the block again on another


# --- the docs' links ------------------------------------------------------------------

_CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)
_INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def broken_links(page: Path, text: str) -> list[str]:
    """The relative links of a Markdown page that name no file or folder of the repository
    (links in code are not links; a ``#fragment`` is not checked)."""
    prose = _CODE.sub("", text)
    targets = _INLINE_LINK.findall(prose) + _REFERENCE_LINK.findall(prose)
    broken = []
    for target in targets:
        if _SCHEME.match(target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or not path.is_relative_to(ROOT):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_names_a_file_of_the_repository(page):
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


def test_the_link_check_finds_a_link_to_a_missing_file_and_only_that():
    text = (
        "[settings](docs/settings.md), [gone](docs/gone.md#part), [site](https://example.com), "
        "[here](#quick-start), `[code](nope.md)`\n\n[ref]: ../outside.md\n"
    )

    assert broken_links(README, text) == ["docs/gone.md#part", "../outside.md"]


# --- the Quick start ------------------------------------------------------------------


def quick_start() -> tuple[str, str]:
    """The Quick start's commands (its ``sh`` block) and the example output (its ``text`` one)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"^```(\w+)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL))
    return blocks["sh"], blocks["text"]


def _placeholders(output: str) -> str:
    """Demo output with what differs from run to run replaced."""
    output = re.sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", output
    )
    output = re.sub(r"pk_[A-Za-z0-9_-]+", "<key>", output)
    output = re.sub(r"SPRING-[0-9A-F]{8}", "<code>", output)
    output = re.sub(r"password \(shown once\): \S+", "password (shown once): <password>", output)
    return re.sub(r"^Database: .*$", "Database: <where>", output, flags=re.MULTILINE)


def _unconfigured(tmp_path: Path) -> dict[str, str]:
    """A newcomer's environment: nothing of Promos or of an outer `make` set, and a data
    directory of the test's own (the default database goes there)."""
    outer = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEFILES", "VENV", "BIN", "PYTHON"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PROMOS_") and name != "DATABASE_URL" and name not in outer
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


def test_the_example_output_in_the_readme_is_what_promos_demo_prints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PROMOS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    result = CliRunner().invoke(main, ["demo"])

    assert result.exit_code == 0, result.output
    assert _placeholders(result.stdout) == _placeholders(quick_start()[1])


def _checkout_with_its_venv(folder: Path) -> Path:
    """What the Quick start needs of a clone once ``make venv`` has run: the Makefile, and a
    .venv whose ``promos`` is the one these tests run (building one would take minutes and
    the network)."""
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, folder / name)
    promos = Path(sys.executable).parent / "promos"
    assert promos.is_file(), f"no promos command beside {sys.executable}: run `make venv`"
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "promos").symlink_to(promos)
    # Built after pyproject.toml was last changed, as `make venv` leaves it: make builds nothing.
    (folder / ".venv" / ".installed").touch()
    hour_ago = time.time() - 3600
    os.utime(folder / "pyproject.toml", (hour_ago, hour_ago))
    return folder


class _Pasted:
    """The Quick start's block run by bash, its output collected as it comes."""

    def __init__(self, block: str, folder: Path, env: dict[str, str]) -> None:
        (folder / "quick-start.sh").write_text(block, encoding="utf-8")
        # A session of its own: stopping it stops make and the server it started.
        self.process = subprocess.Popen(
            ["bash", "quick-start.sh"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        self._reader.join(timeout=STOP_SECONDS)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _serving(pasted: _Pasted, port: int) -> bool:
    """True once the server answers; False if it could not have the port; raises otherwise."""
    url = f"http://127.0.0.1:{port}"
    return wait_healthy(url, pasted.process, lambda: pasted.output, seconds=STARTUP_SECONDS)


def printed_commands(output: str) -> list[str]:
    """The shell commands ``promos demo`` printed, each with its continuation lines."""
    after = output.split("try these in any folder:\n", 1)[1]
    commands: list[str] = []
    pending = ""
    for line in after.splitlines():
        if not line.startswith("  ") or line.strip().startswith("#"):
            continue
        pending += line.strip() + "\n"
        if not line.rstrip().endswith(("\\", "|")):
            commands.append(pending)
            pending = ""
    return commands


def _run(command: str, folder: Path) -> Any:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return json.loads(done.stdout)


def test_the_quick_start_pasted_as_one_block_issues_codes_and_uploads_a_csv(tmp_path):
    block = quick_start()[0]
    elsewhere = tmp_path / "elsewhere"  # the printed commands work from any folder
    elsewhere.mkdir()
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        env = _unconfigured(tmp_path / f"attempt-{attempt}") | {"PROMOS_PORT": str(port)}
        pasted = _Pasted(block, _checkout_with_its_venv(tmp_path / f"clone-{attempt}"), env)
        try:
            if not _serving(pasted, port):
                continue
            redeem, upload, batches, stats, customer_codes = printed_commands(pasted.output)

            first, second, third = (_run(redeem, elsewhere) for _ in range(3))
            uploaded = _run(upload, elsewhere)

            assert first["code"].startswith("DEMO-")
            assert second["code"] != first["code"]
            assert "error" in third  # 2 codes per customer every 30 days
            assert (uploaded["message"], uploaded["count"]) == ("Codes uploaded successfully", 2)
            assert {"Demo batch", "Spring"} <= {b["name"] for b in _run(batches, elsewhere)}
            assert _run(stats, elsewhere)["issued"] == 2
            assert len(_run(customer_codes, elsewhere)["items"]) == 2
            return
        finally:
            pasted.stop()
    pytest.fail(f"the port was taken {START_ATTEMPTS} times")
