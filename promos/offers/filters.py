"""Offer filters: parsing them strictly, and matching a request's attributes against them.

A filter names an attribute and holds one of: ``{"eq": "text"}``, ``{"neq": "text"}`` or an
interval ``{"geq": number, "lt": number}`` (either bound or both; ``geq`` inclusive, ``lt``
exclusive). For each attribute ``k=v`` a request sends, an offer matches when:

- its filter on ``k`` is ``eq`` and equals ``v``, or ``neq`` and differs from ``v``;
- and, only in a game with ``allowInefficientQueries``: it has no filter on ``k``, or an
  interval on ``k`` that contains ``v`` (which must then be a number).

Attributes the request does not send are not looked at; a request that sends none matches
every offer. ``FilterIndex`` answers the same question for many offers at once with sets.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from promos.errors import InvalidInput
from promos.validation import MAX_NAME_LENGTH

# Attribute names end up in JSON paths on SQLite ($."name"): no quotes, backslashes or spaces.
ATTRIBUTE = re.compile(r'^[^\s"\\\x00-\x1f\x7f]+$')


class InvalidFilters(InvalidInput):
    code = "invalid_filters"


@dataclass(frozen=True, slots=True)
class Filter:
    kind: Literal["eq", "neq", "interval"]
    value: str | None = None
    geq: float | None = None
    lt: float | None = None

    def contains(self, number: float) -> bool:
        return (self.geq is None or number >= self.geq) and (self.lt is None or number < self.lt)

    def to_json(self) -> dict[str, Any]:
        if self.kind != "interval":
            return {self.kind: self.value}
        return {k: v for k, v in (("geq", self.geq), ("lt", self.lt)) if v is not None}


Filters = Mapping[str, Filter]


def valid_attribute(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME_LENGTH and ATTRIBUTE.match(name) is not None


def parse_filters(data: Any) -> dict[str, Filter]:
    """Filters from their JSON object (``None`` is no filter); ``InvalidFilters`` if malformed."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidFilters('filters must be a JSON object, e.g. {"level": {"geq": 1, "lt": 10}}')
    return {name: _parse_one(name, spec) for name, spec in data.items()}


def _parse_one(name: str, spec: Any) -> Filter:
    if not valid_attribute(name):
        raise InvalidFilters(
            f"filter attribute {name!r}: 1 to {MAX_NAME_LENGTH} characters, "
            "no spaces, quotes or backslashes"
        )
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidFilters(
            f'filters.{name} must be {{"eq": "text"}}, {{"neq": "text"}} '
            'or {"geq": number, "lt": number}'
        )
    keys = set(spec)
    if keys in ({"eq"}, {"neq"}):
        kind: Literal["eq", "neq"] = "eq" if "eq" in keys else "neq"
        value = spec[kind]
        if not isinstance(value, str):
            raise InvalidFilters(f"filters.{name}.{kind} must be a string")
        return Filter(kind, value=value)
    if keys and keys <= {"geq", "lt"}:
        geq, lt = _number(name, "geq", spec.get("geq")), _number(name, "lt", spec.get("lt"))
        if geq is not None and lt is not None and geq >= lt:
            raise InvalidFilters(f"filters.{name}: geq must be less than lt (nothing would match)")
        return Filter("interval", geq=geq, lt=lt)
    raise InvalidFilters(
        f"filters.{name} must hold exactly one kind of filter: eq, neq, or geq and/or lt "
        f"(got {', '.join(sorted(keys))})"
    )


def _number(name: str, bound: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidFilters(f"filters.{name}.{bound} must be a number")
    return float(value)


def filters_json(filters: Filters) -> dict[str, Any]:
    return {name: f.to_json() for name, f in filters.items()}


def as_number(text: str) -> float | None:
    """A query-string value as a finite number, or ``None``."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def matches(filters: Filters, attributes: Mapping[str, str], *, inefficient: bool) -> bool:
    """Whether one offer's filters match the attributes a request sent."""
    return first_mismatch(filters, attributes, inefficient=inefficient) is None


def first_mismatch(
    filters: Filters, attributes: Mapping[str, str], *, inefficient: bool
) -> str | None:
    """The first attribute sent that one offer's filters refuse; ``None`` if they match."""
    for name, value in attributes.items():
        f = filters.get(name)
        if f is None:
            ok = inefficient
        elif f.kind == "eq":
            ok = f.value == value
        elif f.kind == "neq":
            ok = f.value != value
        else:
            number = as_number(value)
            ok = inefficient and number is not None and f.contains(number)
        if not ok:
            return name
    return None


@dataclass(slots=True)
class _Attribute:
    eq: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    neq: set[int] = field(default_factory=set)
    neq_by_value: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    intervals: list[tuple[int, Filter]] = field(default_factory=list)
    filtered: set[int] = field(default_factory=set)
    unfiltered: frozenset[int] = frozenset()


class FilterIndex:
    """``matches`` for many offers at once: per attribute, sets of offer positions."""

    def __init__(self, offers: Iterable[tuple[int, Filters]]) -> None:
        self._all: frozenset[int] = frozenset()
        self._by_name: dict[str, _Attribute] = {}
        positions = []
        for position, filters in offers:
            positions.append(position)
            for name, f in filters.items():
                attribute = self._by_name.setdefault(name, _Attribute())
                attribute.filtered.add(position)
                if f.kind == "eq":
                    attribute.eq[f.value or ""].add(position)
                elif f.kind == "neq":
                    attribute.neq.add(position)
                    attribute.neq_by_value[f.value or ""].add(position)
                else:
                    attribute.intervals.append((position, f))
        self._all = frozenset(positions)
        for attribute in self._by_name.values():
            attribute.unfiltered = self._all - attribute.filtered

    @property
    def everything(self) -> frozenset[int]:
        return self._all

    def select(
        self, attributes: Mapping[str, str], *, inefficient: bool
    ) -> set[int] | frozenset[int]:
        """The positions of the offers whose filters match ``attributes``."""
        found: set[int] | frozenset[int] = self._all
        for name, value in attributes.items():
            attribute = self._by_name.get(name)
            if attribute is None:
                if inefficient:
                    continue
                return frozenset()
            here = attribute.eq.get(value, set()) | (
                attribute.neq - attribute.neq_by_value.get(value, set())
            )
            if inefficient:
                here |= attribute.unfiltered
                number = as_number(value)
                if number is not None:
                    here |= {p for p, f in attribute.intervals if f.contains(number)}
            found = found & here
            if not found:
                break
        return found
