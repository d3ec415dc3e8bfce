"""A posted form as typed values, or as the same form again with an error by each bad field.

Pages validate with the API's own pydantic models (one rule, one place) and show pydantic's
errors in words for people. ``Form`` is what the templates' field macros read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from promos.console import csrf

M = TypeVar("M", bound=BaseModel)
MAX_VALUE = 10_000  # characters of one value kept to show the form again


@dataclass
class Form:
    """The values a person entered (as text) and, after a failed post, what is wrong."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # What is wrong with the form as a whole, not with one field.
    problem: str | None = None

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def error(self, name: str) -> str | None:
        return self.errors.get(name)

    def fail(self, name: str, message: str) -> Form:
        """This form with ``message`` by the field ``name``."""
        self.errors[name] = message
        return self

    @property
    def ok(self) -> bool:
        return not self.errors and self.problem is None


def text_values(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The text fields ``names`` of a post or a query (files and the CSRF token left out)."""
    values = {}
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and name != csrf.FIELD:
            values[name] = value[:MAX_VALUE]
    return values


def parse(
    model: type[M],
    data: Mapping[str, Any],
    *,
    messages: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[M | None, Form]:
    """``data`` as ``model`` (only its fields read), or ``None`` and the form with its errors.

    ``messages`` words an error type for one field, e.g. ``{"username": {"string_pattern_
    mismatch": "No spaces or colons."}}``.
    """
    values = text_values(data, tuple(model.model_fields))
    form = Form(values)
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            if name in form.errors:
                continue
            own = (messages or {}).get(name, {}).get(error["type"])
            if error.get("input") == "" and error["type"] != "value_error":
                own = own or "Required."
            message = own or describe(error["type"], error.get("ctx") or {}, error["msg"])
            if name in values or name in model.model_fields:
                form.errors[name] = message
            else:
                form.problem = message
        return None, form
    return parsed, form


def describe(kind: str, context: Mapping[str, Any], fallback: str) -> str:  # noqa: PLR0911
    """Pydantic's error ``kind`` in words for the person filling in a form."""
    if kind == "missing":
        return "Required."
    if kind == "string_too_short":
        least = context.get("min_length", 1)
        return "Required." if least == 1 else f"At least {least} characters."
    if kind == "string_too_long":
        return f"At most {context.get('max_length')} characters."
    if kind == "literal_error":
        expected = str(context.get("expected", "the options")).replace("'", "")
        return f"Choose one of {expected}."
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "A whole number."
    if kind == "greater_than_equal":
        return f"At least {context.get('ge')}."
    if kind == "greater_than":
        return f"More than {context.get('gt')}."
    if kind == "less_than_equal":
        return f"At most {context.get('le')}."
    if kind == "less_than":
        return f"Less than {context.get('lt')}."
    return fallback[:1].upper() + fallback[1:] + ("" if fallback.endswith(".") else ".")


TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
TIME_ERROR = "A date and time in UTC, e.g. 2026-03-01T12:00."


def utc_time(text: str | None) -> datetime | None:
    """A datetime-local field's value (no zone: read as UTC), or an ISO time with its zone."""
    if text is None:
        return None
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(TIME_ERROR) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
