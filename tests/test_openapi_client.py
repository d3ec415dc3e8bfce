"""A Python client generated from the OpenAPI document covers every operation, typed.

openapi-python-client is what many integrators run on the document; it drops an operation
whose schemas it cannot read, and leaves a response untyped when it cannot tell its type.
Any warning of the generator fails the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from promos.app import create_app
from promos.settings import Settings

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
_BRANCH = re.compile(r"if response\.status_code == (\d+):\n(.*?)\n\s*return response_", re.DOTALL)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()


@pytest.fixture(scope="module")
def generated(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("client")
    (work / "openapi.json").write_text(json.dumps(document))
    (work / "config.yaml").write_text("post_hooks: []\n")  # no formatter run on the output
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(work / "openapi.json"),
            "--config",
            str(work / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(work / "client"),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    return work / "client"


def _modules(client: Path) -> dict[str, str]:
    return {
        path.stem: path.read_text()
        for path in (client / "api").rglob("*.py")
        if path.name != "__init__.py"
    }


def _snake(operation_id: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", operation_id.lower())).strip("_")


def test_the_generator_makes_a_function_for_every_operation(document, generated):
    operations = {
        _snake(operation["operationId"])
        for operations in document["paths"].values()
        for operation in operations.values()
    }

    assert len(operations) > 100
    assert set(_modules(generated)) == operations


def test_every_documented_answer_of_the_generated_client_is_typed(generated):
    untyped = [
        f"{name}: {status}"
        for name, source in _modules(generated).items()
        for status, body in _BRANCH.findall(source)
        if status != "204" and "cast(Any" in body
    ]

    assert untyped == []


def test_the_generated_client_parses_errors_into_their_models(generated):
    source = _modules(generated)["get_batch_v1_batches_batch_id_get"]

    assert "BatchOut.from_dict" in source
    assert "ErrorBody.from_dict" in source
