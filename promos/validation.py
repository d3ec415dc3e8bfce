"""Limits every API applies to what it takes: text a database can hold and a person can read,
numbers it can count, ids it can store.

Every string a request carries meets one of the patterns below before it reaches a service
(tests/test_openapi_document.py checks the document for it), and every integer is bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# Characters no name, code or identifier holds: the C0 and C1 controls and DEL (PostgreSQL
# text cannot hold NUL at all); the bidirectional controls (U+061C, U+200E, U+200F,
# U+202A-U+202E, U+2066-U+2069), which make a text read otherwise than it is written; the line
# and paragraph separators; U+FEFF, the byte order mark.
HIDDEN = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff"
PRINTABLE = rf"^[^{HIDDEN}]+$"
PRINTABLE_NO_SPACE = rf"^[^\s{HIDDEN}]+$"
# Free text (a description): lines and tabs, and the bidirectional marks that right-to-left
# scripts need, but no other control character.
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# What any other string must be to reach the database (a password, a secret): no NUL. A
# pattern also makes pydantic refuse a lone surrogate (JSON's "\udc00"), which no database
# can encode.
STORABLE = r"^[^\x00]*$"
# Lone surrogates, for Python's own patterns (pydantic's cannot name them: it refuses them).
SURROGATES = r"\ud800-\udfff"
_HIDDEN = re.compile(f"[{HIDDEN}{SURROGATES}]")
_UNSTORABLE = re.compile(rf"[\x00{SURROGATES}]")

MAX_NAME_LENGTH = 255
MAX_PER_CUSTOMER = 1_000_000
MAX_TIME_LIMIT_DAYS = 36_500  # a hundred years
MAX_OFFSET = 1_000_000_000
# Row ids are BIGINT: an id outside 1..MAX_ID names no row, and no driver could even send it.
MAX_ID = 2**63 - 1

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Identifier = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE_NO_SPACE)
]
EMAIL = rf"^[^\s@{HIDDEN}]+@[^\s@{HIDDEN}]+$"
Email = Annotated[str, Field(min_length=3, max_length=MAX_NAME_LENGTH, pattern=EMAIL)]
# A value only looked up, never stored (a login, a search term, a filter): anything that could
# have been stored is taken, and finds nothing if nothing has it.
Lookup = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=STORABLE)]
Secret = Annotated[str, Field(min_length=1, max_length=1024, pattern=STORABLE)]


def has_control_character(value: str) -> bool:
    """Whether ``value`` holds a character no name or code holds (``HIDDEN``), or one no
    database can store: for lookups that answer "not found" rather than "invalid"."""
    return _HIDDEN.search(value) is not None


def is_storable(value: str) -> bool:
    """Whether a database can hold ``value``: no NUL, no lone surrogate."""
    return _UNSTORABLE.search(value) is None


# --- ids -------------------------------------------------------------------------------------

# Bounds as OpenAPI documents them: FastAPI writes a body's bounds as floats, and a float holds
# 2**63 exactly, but not MAX_ID.
BELOW_2_63 = 2**63
Id = Annotated[int, Field(ge=1, lt=BELOW_2_63)]
"""A row id in a query or a body: outside 1..MAX_ID it is invalid input (422, or 400)."""

NO_SUCH_ID = "no_such_id"


def _path_id(low: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= MAX_ID:
            raise PydanticCustomError(
                NO_SUCH_ID,
                "nothing has this id: ids are {low} to {high}",
                {"low": low, "high": MAX_ID},
            )
        return value

    return check


# An id in a path: any other integer names nothing, and is answered as the route answers an id
# that names nothing (404; promos.http.errors). Its bounds are documented, not checked by
# pydantic, which would make them invalid input.
PathId = Annotated[
    int,
    AfterValidator(_path_id(1)),
    Field(json_schema_extra={"minimum": 1, "maximum": MAX_ID}),
]
# The discount generator's brands start at 0.
BrandId = Annotated[
    int,
    AfterValidator(_path_id(0)),
    Field(json_schema_extra={"minimum": 0, "maximum": MAX_ID}),
]


# --- free-form JSON ----------------------------------------------------------------------------

MAX_JSON_DEPTH = 32


def _why_unstorable(item: Any) -> str | None:
    """What keeps one value of a JSON document from being stored and sent back, if anything."""
    if isinstance(item, str) and not is_storable(item):
        return "no text in it, key or value, may hold NUL or a lone surrogate"
    if (
        isinstance(item, int)
        and not isinstance(item, bool)
        and not -BELOW_2_63 <= item < BELOW_2_63
    ):
        return "its integers must fit in 64 bits (signed)"
    # PostgreSQL's JSONB writes 1e30 back as 1000000000000000000000000000000: an integer that
    # no 64-bit JSON encoder can send. Below 2^63 either form comes back as one that can.
    if isinstance(item, float) and not (math.isfinite(item) and abs(item) < BELOW_2_63):
        return "its numbers must be finite and below 2^63 in size (no NaN, no Infinity)"
    return None


def _storable_object(value: dict[str, Any]) -> dict[str, Any]:
    # Iterative: a document nested as deep as the JSON parser allows must not exhaust the stack.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise PydanticCustomError(
                    "too_deep",
                    "it may nest objects and lists {max} deep at most",
                    {"max": MAX_JSON_DEPTH},
                )
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif (why := _why_unstorable(item)) is not None:
            raise PydanticCustomError("unstorable_value", why)
    return value


JsonDocument = Annotated[dict[str, Any], AfterValidator(_storable_object)]
"""A free-form JSON object, stored as it is and sent back as it was: no text in it, key or
value, holds NUL (which PostgreSQL's JSONB refuses) or a lone surrogate; its integers fit in
64 bits and its numbers are finite and below 2^63 in size (what every JSON encoder on the way
back can write, whatever form JSONB gives them); it nests
``MAX_JSON_DEPTH`` deep at most."""
