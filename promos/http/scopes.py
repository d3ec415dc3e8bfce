"""The scope check of every route that takes a credential, in one place.

Each such route declares what it needs as a dependency: ``needs("games", "manage",
at=path("game_id", unknown=...))``, on the route or on its whole router. The check runs once
per request, on the principal the Authenticator already holds (no database read, except
where a resource is known only through another: a batch's client). A route that takes a
credential and declares no scope refuses every scoped key (``current_principal``), and the
test of every route (tests/test_scopes.py) fails for it.

- The scope's kind and action not held: 403 ``scope_missing``, naming it.
- Held for some resources only, and the request names another: the route's own "unknown"
  error (a 404, in that API's shape), so that nothing is told about resources outside it.
- Held for some resources only, on a route that spans them all (a list without a filter):
  403 ``scope_missing`` naming the scope without ids; a route that lists may instead show
  only the key's resources (``listed=True``, its handler filters with ``listed_ids``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth.errors import ScopeMissing
from promos.auth.scopes import KINDS, Action, Ids, granted
from promos.auth.service import Principal
from promos.errors import PromosError
from promos.http.deps import authenticate, current_principal
from promos.state import AppState

Source = Literal["path", "query", "body"]


@dataclass(frozen=True, slots=True)
class Values:
    """What a request names: its path parameters, query parameters and JSON body."""

    path: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)

    def get(self, source: Source, name: str) -> Any:
        return getattr(self, source).get(name)


Unknown = Callable[[Values], PromosError]
# The ids of the resources behind another (a batch's clients); none if it does not exist.
Resolve = Callable[[AsyncConnection, str], Awaitable[Collection[str]]]


@dataclass(frozen=True, slots=True)
class At:
    """Where a request names its resource, and what the route answers for an unknown one
    (``unknown`` None: a resource that need not exist, such as a client: 403 naming the
    scope with that id).

    ``resolve``: the value names another resource, whose owners are read (a batch's
    clients): the request is let through if the key holds any of them.
    """

    source: Source
    name: str
    unknown: Unknown | None = None
    resolve: Resolve | None = None

    def describe(self) -> str:
        via = " (its owner's)" if self.resolve is not None else ""
        return f"{self.source} {self.name}{via}"


def path(name: str, *, unknown: Unknown | None = None, resolve: Resolve | None = None) -> At:
    return At("path", name, unknown, resolve)


def query(name: str, *, unknown: Unknown | None = None) -> At:
    return At("query", name, unknown)


def body(name: str, *, unknown: Unknown | None = None) -> At:
    return At("body", name, unknown)


@dataclass(frozen=True, eq=False)
class Need:
    """What a route needs: ``kind:action``, on the resource ``at`` names (None: on every
    resource of the kind, unless ``listed``: the route shows only the key's ones).

    ``kind`` None: any credential, the route acting on the caller's own self only (who am
    I, sign out).
    """

    kind: str | None
    action: Action = "read"
    at: At | None = None
    listed: bool = False

    def __post_init__(self) -> None:
        if self.kind is None:
            return
        kind = KINDS[self.kind]
        if self.action not in kind.actions:
            raise ValueError(f"{self.kind} has no action {self.action}")
        if (self.at is not None or self.listed) and kind.normalize is None:
            raise ValueError(f"{self.kind} scopes name no ids")

    def __str__(self) -> str:
        return "any credential" if self.kind is None else f"{self.kind}:{self.action}"

    def granted(self, principal: Principal) -> Ids:
        """The ids of the kind the principal may act on here (None: all), or the 403."""
        if self.kind is None:
            return None
        return granted(principal.role, principal.scopes, self.kind, self.action)

    def admits(self, ids: Ids, one: str) -> bool:
        """Whether ``ids`` (what ``granted`` gave) hold ``one``, given in its one spelling:
        the lean routes' check per request; ``admit`` then refuses as the route does."""
        return ids is None or self.listed or one in ids

    def admit(
        self, principal: Principal, values: Values, owners: Collection[str] | None = None
    ) -> None:
        """Let the request through, or raise its 403 or its "unknown" error. ``owners``:
        the ids ``at`` stands for, when they were read (a batch's clients)."""
        ids = self.granted(principal)
        if ids is None or self.listed:
            return
        kind = KINDS[str(self.kind)]
        if self.at is None:
            raise ScopeMissing(
                f"this API key holds {self} for some {kind.resource}s only, and this route "
                f"acts on every one: it needs {self} without ids",
                details={"missing_scope": str(self)},
            )
        raw = values.get(self.at.source, self.at.name)
        if raw is None:
            raise ScopeMissing(
                f"this API key holds {self} for some {kind.resource}s only: name one "
                f"({self.at.source} {self.at.name}), or use a key with {self} without ids",
                details={"missing_scope": str(self)},
            )
        found = [raw] if owners is None else owners
        if any(_normalized(kind.name, one) in ids for one in found):
            return
        if self.at.unknown is None:
            raise ScopeMissing(
                f"this API key lacks the scope {self}:{raw}",
                details={"missing_scope": f"{self}:{raw}"},
            )
        raise self.at.unknown(values)

    async def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> None:
        at = self.at
        if at is None or self.listed or self.granted(principal) is None:
            self.admit(principal, Values())
            return
        values = Values(request.path_params, request.query_params, await _json(request, at))
        owners = None
        raw = values.get(at.source, at.name)
        if at.resolve is not None and raw is not None:
            state: AppState = request.app.state.promos
            async with state.database.read() as conn:
                owners = await at.resolve(conn, str(raw))
        self.admit(principal, values, owners)


def _normalized(kind: str, raw: Any) -> str | None:
    normalize = KINDS[kind].normalize
    assert normalize is not None  # noqa: S101 - Need refuses a located kind without ids
    try:
        return normalize(str(raw))
    except ValueError:
        return None


async def _json(request: Request, at: At) -> Mapping[str, Any]:
    """The body's fields: JSON, or a form (the referral seed takes both)."""
    if at.source != "body":
        return {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(await request.form())
    try:
        # Read and parsed already by FastAPI for the route's body (Starlette keeps it).
        found = await request.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True, eq=False)
class KeyWhenSet:
    """A public route that takes a key holding ``need`` when the setting ``setting`` is true
    (the Offers player routes). As a dependency it gives the caller, or None when the route
    is public; the route checks ``need.admit`` once it has read its resource, as its lean
    twin (``promos.http.fastpath``) does."""

    need: Need
    setting: str

    def required(self, state: AppState) -> bool:
        return bool(getattr(state.settings, self.setting))

    async def __call__(self, request: Request) -> Principal | None:
        state: AppState = request.app.state.promos
        if not self.required(state):
            return None
        return self.caller(await authenticate(request, state))

    def caller(self, principal: Principal) -> Principal:
        """The principal, if it holds the scope's kind and action (its resource is checked
        once read); the 403 otherwise."""
        self.need.granted(principal)
        return principal


def needs(kind: str, action: Action, *, at: At | None = None, listed: bool = False) -> Any:
    """The dependency declaring (and checking) a route's scope: put it in ``dependencies``."""
    return Depends(Need(kind, action, at, listed))


# A route that acts on its caller only (who am I, sign out): any credential opens it.
OWN = Depends(Need(None))


def listed_ids(principal: Principal, kind: str, action: Action) -> Ids:
    """The ids a listing shows to this principal (None: all), for a route ``listed``."""
    return granted(principal.role, principal.scopes, kind, action)
