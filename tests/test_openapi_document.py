"""The OpenAPI document is complete: what a client generator or a person needs is there.

`make fuzz` proves that the server keeps to the document; these tests keep the document
itself complete: typed answers, each API's own error shape, examples, unique names and
described fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from promos.app import create_app
from promos.settings import Settings

DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]
IDS = [name for name, _ in OPERATIONS]
REF = "#/components/schemas/"

# Each API's one error body, by the tag of its operations (the native API's is ErrorBody).
ERROR_SCHEMAS = {
    "Promos (compat)": "PromosErrorBody",
    "Ango (compat)": "AngoError",
    "Discount generator (compat)": "Envelope",
    "Referral program (compat)": "ReferralError",
    "Offers (compat)": "OffersError",
    "health": "Unhealthy",
}


# Answers that the seeds give in a success's shape although their status says otherwise.
SEED_ANSWERS = {
    # The Offers seed answers a replayed claim 409, with the first claim's body.
    ("PUT /offers/claim", "409"): "ClaimOut",
}


def _schema(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    return SCHEMAS[ref.removeprefix(REF)] if ref else ref_or_schema


def _error_schema(operation: dict[str, Any]) -> str:
    return next((ERROR_SCHEMAS[t] for t in operation["tags"] if t in ERROR_SCHEMAS), "ErrorBody")


def _has_example(schema: dict[str, Any]) -> bool:
    schema = _schema(schema)
    if "examples" in schema or "example" in schema:
        return True
    branches = [b for b in schema.get("anyOf", schema.get("oneOf", [])) if b.get("type") != "null"]
    return bool(branches) and all(_has_example(b) for b in branches)


def test_the_document_has_every_operation():
    assert len(OPERATIONS) > 100


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_answers_a_typed_success(name, operation):
    successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}

    assert successes, name
    for status, response in successes.items():
        if status == "204":
            assert "content" not in response, name
            continue
        [(media_type, content)] = response["content"].items()
        schema = content.get("schema", {})
        assert schema not in ({}, {"type": "object"}), f"{name} {status} {media_type}"


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=IDS)
def test_every_error_answer_has_the_error_shape_of_its_api(name, operation):
    errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}

    assert errors, name
    for status, response in errors.items():
        expected = {"$ref": REF + SEED_ANSWERS.get((name, status), _error_schema(operation))}
        assert response["content"]["application/json"]["schema"] == expected, (name, status)
        assert response["description"], (name, status)


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=IDS)
def test_what_every_operation_takes_documents_its_errors(name, operation):
    statuses = set(operation["responses"])

    if operation.get("security"):  # HTTP Basic passwords count as sign-in attempts
        assert {"401", "429"} <= statuses, name
    if "requestBody" in operation:
        assert "413" in statuses, name
    if "requestBody" in operation or operation.get("parameters"):
        assert statuses & {"400", "422"}, name
    if name != "GET /healthcheck":
        assert statuses & {"500", "503"}, name  # the database may be down


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=IDS)
def test_every_native_operation_documents_the_unknown_parameter_400(name, operation):
    if " /v1/" in name:
        assert "400" in operation["responses"], name


def test_no_operation_documents_fastapis_own_validation_shape():
    assert "HTTPValidationError" not in SCHEMAS
    assert "ValidationError" not in SCHEMAS


def test_every_request_body_has_an_example():
    missing = [
        name
        for name, operation in OPERATIONS
        if "requestBody" in operation
        and not any(
            "example" in content or "examples" in content or _has_example(content["schema"])
            for content in operation["requestBody"]["content"].values()
        )
    ]

    assert missing == []


def test_every_error_schema_has_an_example():
    for name in {*ERROR_SCHEMAS.values(), "ErrorBody"} - {"Unhealthy"}:
        assert _has_example(SCHEMAS[name]), name


def test_no_schema_is_named_by_its_module_or_after_an_operation():
    odd = [name for name in SCHEMAS if "__" in name or name.startswith(("Body_", "Response_"))]

    assert odd == []


def test_no_two_schemas_share_a_title():
    titles = [schema.get("title", name) for name, schema in SCHEMAS.items()]

    assert sorted(t for t in titles if titles.count(t) > 1) == []


def test_every_property_is_described():
    undescribed = [
        f"{name}.{field}"
        for name, schema in SCHEMAS.items()
        for field, definition in schema.get("properties", {}).items()
        if not definition.get("description")
    ]

    assert undescribed == []


def test_every_parameter_is_described():
    undescribed = [
        f"{name} {parameter['name']}"
        for name, operation in OPERATIONS
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and not parameter.get("description")
    ]

    assert undescribed == []


NATIVE_LISTS = [
    (name, operation)
    for name, operation in OPERATIONS
    if name.startswith("GET /v1/")
    and "application/json" in operation["responses"]["200"]["content"]
    and "items"
    in _schema(operation["responses"]["200"]["content"]["application/json"]["schema"]).get(
        "properties", {}
    )
]


def test_the_native_lists_are_found():
    assert len(NATIVE_LISTS) >= 14


@pytest.mark.parametrize(("name", "operation"), NATIVE_LISTS, ids=[n for n, _ in NATIVE_LISTS])
def test_every_native_list_pages_by_cursor(name, operation):
    page = _schema(operation["responses"]["200"]["content"]["application/json"]["schema"])
    parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}

    assert {"items", "has_more", "next_cursor"} <= set(page["properties"]), name
    assert {"limit", "cursor"} <= parameters, name
    assert not parameters & {"offset", "page"}, name


# What reaches the database from a request: every string refuses NUL (by a pattern, which also
# makes pydantic refuse a lone surrogate), every integer is bounded (tests/test_input_limits.py
# sends them).
FORMATS_WITHOUT_NUL = {"uuid", "date", "date-time", "uri", "binary"}


def _leaves(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string and integer a request schema takes, with where it is."""
    if "$ref" in schema:
        yield from _leaves(_schema(schema), where)
        return
    branches = [b for k in ("anyOf", "oneOf", "allOf") for b in schema.get(k, [])]
    decimal = {"number", "string"} <= {b.get("type") for b in branches}
    for branch in branches:
        if not (decimal and branch.get("type") == "string"):  # a Decimal, parsed whole
            yield from _leaves(branch, where)
    if schema.get("type") in {"string", "integer"}:
        yield where, schema
    for name, inner in schema.get("properties", {}).items():
        yield from _leaves(inner, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _leaves(schema["items"], f"{where}[]")


def _request_leaves() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, operation in OPERATIONS:
        for parameter in operation.get("parameters", []):
            where = f"{name} {parameter['in']} {parameter['name']}"
            yield from _leaves(parameter["schema"], where)
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            yield from _leaves(content["schema"], f"{name} {media_type}")


def _read_whole(where: str) -> bool:
    """Strings read by something that refuses NUL itself, or that cannot carry one."""
    return (
        " header " in where  # HTTP refuses control characters in a header
        # the Offers player routes read their query themselves: 400 for a control character
        or where.startswith(("GET /available-offers ", "GET /offer-info "))
        # a malformed code is "not found or not valid", like an unknown one, by design
        or "/getbycode/" in where
        # an uploaded CSV file, and Ango's rules (JSON), are read value by value
        or where.endswith((".file", ".rules"))
    )


def test_every_string_a_request_takes_refuses_nul():
    open_to_nul = [
        where
        for where, schema in _request_leaves()
        if schema["type"] == "string"
        and "enum" not in schema
        and schema.get("format") not in FORMATS_WITHOUT_NUL
        and not _read_whole(where)
        and (schema.get("pattern") is None or re.search(schema["pattern"], "a\x00"))
    ]

    assert open_to_nul == []


def _64_bit(schema: dict[str, Any]) -> bool:
    low, high = -(2**63), 2**63 - 1
    above = (
        schema.get("minimum", low - 1) >= low or schema.get("exclusiveMinimum", low - 2) >= low - 1
    )
    below = (
        schema.get("maximum", high + 1) <= high
        or schema.get("exclusiveMaximum", high + 2) <= high + 1
    )
    return above and below


def test_every_integer_a_request_takes_is_a_64_bit_one():
    unbounded = [
        where
        for where, schema in _request_leaves()
        if schema["type"] == "integer" and not _64_bit(schema)
    ]

    assert unbounded == []
