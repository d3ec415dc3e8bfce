"""What a credential may do: scopes, each an action on a kind of resource, for every resource
of that kind or for some (by id).

A person (and an API key made without scopes) holds every scope of their role: an admin all,
sales all but the admin kinds (people, webhooks, audit). A scoped key holds only its scopes.
Actions do not imply one another: ``use`` (issue, redeem, claim, sign up) does not read, and
``manage`` does not use. ``promos.http.scopes`` checks them, once per route, from what each
route declares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args
from uuid import UUID

from promos.auth.errors import AdminRequired, InvalidScope, ScopeMissing

Action = Literal["read", "use", "manage"]
ACTIONS: tuple[Action, ...] = get_args(Action)
Role = Literal["admin", "sales"]
Ids = frozenset[str] | None  # None: every resource of the kind

_GAME_ID = re.compile(r"[^-][a-zA-Z0-9_-]{0,254}")


def _uuid(text: str) -> str:
    return str(UUID(text))


def _program(text: str) -> str:
    value = int(text)
    if not 0 < value < 2**63:
        raise ValueError(text)
    return str(value)


def _game(text: str) -> str:
    if not _GAME_ID.fullmatch(text):
        raise ValueError(text)
    return text


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of resource: the actions it has, and what its ids are, if a scope may name
    some (``resource``: what an id is, ``normalize``: its one spelling, or ``ValueError``)."""

    name: str
    actions: tuple[Action, ...]
    resource: str | None = None
    normalize: Callable[[str], str] | None = None
    admin_only: bool = False


KINDS: Mapping[str, Kind] = {
    k.name: k
    for k in (
        Kind("pools", ACTIONS, "client id (a UUID; a brand is a client)", _uuid),
        Kind("promocodes", ACTIONS),
        Kind("catalog", ("read", "manage")),
        Kind("referrals", ACTIONS, "referral program id", _program),
        Kind("games", ACTIONS, "game id", _game),
        Kind("brands", ("manage",), "brand id (the discount generator's number)", _program),
        Kind("webhooks", ("read", "manage"), admin_only=True),
        Kind("audit", ("read",), admin_only=True),
        Kind("people", ("read", "manage"), admin_only=True),
    )
}


@dataclass(frozen=True, slots=True)
class Scope:
    """``kind:action`` on every resource of the kind, or ``kind:action:id,id`` on those."""

    kind: str
    action: Action
    ids: Ids = None

    def __str__(self) -> str:
        base = f"{self.kind}:{self.action}"
        return base if self.ids is None else f"{base}:{','.join(sorted(self.ids))}"


def parse_scope(text: str) -> Scope:
    """A scope from its text, e.g. ``games:use:galaxy``; ``InvalidScope`` says what to fix."""
    kind_name, _, rest = text.strip().partition(":")
    action, _, ids_text = rest.partition(":")
    kind = KINDS.get(kind_name)
    if kind is None:
        raise InvalidScope(f"unknown scope kind {kind_name!r}: one of {', '.join(KINDS)}")
    if action not in kind.actions:
        raise InvalidScope(
            f"{kind_name} has no action {action!r}: one of {', '.join(kind.actions)}"
        )
    if not ids_text:
        return Scope(kind_name, action)
    if kind.normalize is None:
        raise InvalidScope(f"{kind_name} scopes name no ids: write {kind_name}:{action}")
    ids = set()
    for raw in ids_text.split(","):
        try:
            ids.add(kind.normalize(raw.strip()))
        except ValueError:
            raise InvalidScope(f"{raw.strip()!r} is not a {kind.resource}") from None
    return Scope(kind_name, action, frozenset(ids))


class Grants:
    """The scopes a credential holds, by (kind, action): the ids it may act on."""

    __slots__ = ("_ids", "scopes")

    def __init__(self, scopes: Iterable[Scope]) -> None:
        self.scopes = tuple(sorted(scopes, key=str))
        self._ids: dict[tuple[str, str], Ids] = {}
        for scope in self.scopes:
            key = (scope.kind, scope.action)
            if key in self._ids:
                held = self._ids[key]
                self._ids[key] = None if held is None or scope.ids is None else held | scope.ids
            else:
                self._ids[key] = scope.ids

    def holds(self, kind: str, action: str) -> bool:
        return (kind, action) in self._ids

    def ids(self, kind: str, action: str) -> Ids:
        """The ids of the scope held (None: every resource); ``KeyError`` if none is held."""
        return self._ids[(kind, action)]

    def within(self, role: Role) -> bool:
        """Whether every scope is one the role may hold."""
        return role == "admin" or not any(KINDS[s.kind].admin_only for s in self.scopes)


def role_scopes(role: Role) -> Grants:
    """Every scope the role holds: what a person, or a key made without scopes, holds."""
    return Grants(
        Scope(k.name, a)
        for k in KINDS.values()
        if role == "admin" or not k.admin_only
        for a in k.actions
    )


ROLE_GRANTS: Mapping[str, Grants] = {"admin": role_scopes("admin"), "sales": role_scopes("sales")}


def granted(role: str, scopes: Grants | None, kind: str, action: str) -> Ids:
    """The ids the credential may ``action`` on ``kind`` (None: every one): ``AdminRequired``
    for an admin kind and no admin, ``ScopeMissing`` (naming it) for a scope not held."""
    held = scopes if scopes is not None else ROLE_GRANTS[role]
    if not held.holds(kind, action):
        if role != "admin" and KINDS[kind].admin_only:
            raise AdminRequired("only an admin may do this")
        raise ScopeMissing(
            f"this API key lacks the scope {kind}:{action}",
            details={"missing_scope": f"{kind}:{action}"},
        )
    return held.ids(kind, action)
