"""An audit entry's before and after as rows a person can read: field, was, became."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Kind = Literal["added", "removed", "changed", "same"]


@dataclass(frozen=True, slots=True)
class Row:
    """One field; ``before`` or ``after`` is ``None`` where the field was not there."""

    field: str
    before: str | None
    after: str | None
    kind: Kind


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted fields (``rules.max_per_customer``); lists stay whole."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            flat.update(flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat


def shown(value: Any) -> str:
    """A JSON value as a person reads it: text as it is, ``null`` as "none"."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def rows(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Row]:
    """Every field of either side, in the order the target lists them, with what happened."""
    was = flatten(before or {})
    now = flatten(after or {})
    names = list(was) + [name for name in now if name not in was]
    found = []
    for name in names:
        if name not in now:
            found.append(Row(name, shown(was[name]), None, "removed"))
        elif name not in was:
            found.append(Row(name, None, shown(now[name]), "added"))
        else:
            kind: Kind = "same" if was[name] == now[name] else "changed"
            found.append(Row(name, shown(was[name]), shown(now[name]), kind))
    return found
