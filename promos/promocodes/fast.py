"""Lean twins of the promo codes' checkout routes: redeem, hold, confirm, release
(``promos.http.fastpath``).

Each takes a well-formed request, checks its credential and scope as its FastAPI twin in
``router.py`` does, then serves it by ``lean`` (one statement on PostgreSQL) or, when that
leaves the case to the service (and always on SQLite), by the same service call as the twin.
A request that is not well-formed (a query string, a path, header or body that does not
validate) is passed on to the twin, which refuses it in its own words.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Scope

from promos.batching import Batcher
from promos.http.deps import route_of
from promos.http.fastpath import FastEndpoint, PassOn, header
from promos.http.ratelimit import client_key
from promos.http.scopes import Need, Values
from promos.observability.requests import set_principal
from promos.promocodes import holds, lean, service
from promos.promocodes.holds import Hold
from promos.promocodes.lean import ConfirmAsk, HoldAsk, RedeemAsk
from promos.promocodes.schemas import HoldIn, HoldOut, RedemptionOut, UseIn
from promos.promocodes.service import Redemption
from promos.state import AppState
from promos.validation import MAX_ID

REDEEM_PATH = "/v1/promocodes/{code}/redeem"
HOLD_PATH = "/v1/promocodes/{code}/holds"
CONFIRM_PATH = "/v1/promocode-holds/{hold_id}/confirm"
RELEASE_PATH = "/v1/promocode-holds/{hold_id}/release"

# What the twins declare: needs("promocodes", "use").
USE = Need("promocodes", "use")

_CODE = re.compile(r"[A-Za-z0-9._~-]{1,255}")  # router.Code
_ID = re.compile(r"[1-9][0-9]{0,18}")  # a PathId as digits, no sign, no leading zero
_MAX_KEY_LENGTH = 255
# Redeems, holds or confirms in a group at most, and groups of each kind in flight at once:
# 6 of the lean path's connections (PROMOS_FAST_PATH_CONNECTIONS, 8 by default), the rest
# free for releases.
_GROUP_SIZE = 64
_GROUPS = 2
Answer = tuple[int, Any, list[tuple[bytes, bytes]]]
Model = TypeVar("Model", bound=BaseModel)
Ask = TypeVar("Ask")
Done = TypeVar("Done")


def _code(scope: Scope) -> str:
    code: str = scope["path_params"]["code"]
    if scope["query_string"] or not _CODE.fullmatch(code):
        raise PassOn
    return code


def _hold_id(scope: Scope) -> int:
    raw: str = scope["path_params"]["hold_id"]
    if scope["query_string"] or not _ID.fullmatch(raw) or int(raw) > MAX_ID:
        raise PassOn
    return int(raw)


def _body(model: type[Model], body: bytes, headers: Mapping[bytes, bytes]) -> Model:
    """The body as FastAPI reads it for a JSON model, or ``PassOn`` for anything else."""
    kind = header(headers, b"content-type")
    if kind is not None:
        main = kind.partition(";")[0].strip().lower()
        if main != "application/json" and not (
            main.startswith("application/") and main.endswith("+json")
        ):
            raise PassOn
    try:
        return model.model_validate_json(body)
    except ValidationError:
        raise PassOn from None


def _key(headers: Mapping[bytes, bytes]) -> str | None:
    key = header(headers, b"idempotency-key")
    if key is not None and not 0 < len(key) <= _MAX_KEY_LENGTH:
        raise PassOn
    return key


async def _admit(state: AppState, scope: Scope, headers: Mapping[bytes, bytes]) -> None:
    """The caller's credential and the route's scope, as the twin's dependencies check them."""
    principal = await state.authenticator.authenticate(
        header(headers, b"authorization"),
        header(headers, b"x-api-key"),
        route=route_of(scope),
        client=client_key(scope),
    )
    set_principal(scope, principal)
    USE.admit(principal, Values())


def _batcher(
    state: AppState, run: Callable[[Sequence[Ask]], Awaitable[Sequence[Done]]]
) -> Batcher[Ask, Done]:
    """The lean statements of one kind, in groups: those read in one turn of the event loop
    leave together (``_GROUP_SIZE``, ``_GROUPS``)."""
    return Batcher(
        run,
        group_size=_GROUP_SIZE,
        concurrency=min(_GROUPS, state.settings.fast_path_connections),
        per_turn=True,
    )


async def _lean(state: AppState, batcher: Batcher[Ask, Done | None], ask: Ask) -> Done | None:
    """The ask's answer from its group's statement; None when the service must decide (on
    SQLite, always)."""
    return await batcher.submit(ask) if state.database.statements is not None else None


def fast_routes(state: AppState) -> dict[tuple[str, str], FastEndpoint]:
    """Redeem, hold, confirm and release without the framework's per-request cost."""
    database = state.database
    # Redeems, holds and confirms in groups, each kind in one statement per group
    # (lean.redeem_group, hold_group, confirm_group).
    redeems: Batcher[RedeemAsk, Redemption | None] = _batcher(
        state, lambda asks: lean.redeem_group(database, asks)
    )
    holds_: Batcher[HoldAsk, Hold | None] = _batcher(
        state, lambda asks: lean.hold_group(database, asks)
    )
    confirms: Batcher[ConfirmAsk, Redemption | None] = _batcher(
        state, lambda asks: lean.confirm_group(database, asks)
    )

    async def redeem(scope: Scope, body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        code = _code(scope)
        payload = _body(UseIn, body, headers)
        key = _key(headers)
        await _admit(state, scope, headers)
        now = state.clock()
        customer = service.normalize_email(payload.customer)
        done = await _lean(
            state,
            redeems,
            RedeemAsk(
                code=code, customer=customer, skus=payload.products, now=now, idempotency_key=key
            ),
        )
        if done is None:
            async with state.database.begin() as conn:
                done = await service.redeem(
                    conn,
                    code=code,
                    customer=payload.customer,
                    skus=payload.products,
                    now=now,
                    idempotency_key=key,
                )
        return 201, RedemptionOut.model_validate(done).model_dump(mode="json"), []

    async def hold(scope: Scope, body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        code = _code(scope)
        payload = _body(HoldIn, body, headers)
        key = _key(headers)
        await _admit(state, scope, headers)
        now = state.clock()
        ttl = timedelta(seconds=min(payload.ttl_seconds, state.settings.promocode_hold_max_seconds))
        customer = service.normalize_email(payload.customer)
        held = await _lean(
            state,
            holds_,
            HoldAsk(
                code=code,
                customer=customer,
                skus=payload.products,
                now=now,
                idempotency_key=key,
                order=payload.order,
                ttl=ttl,
            ),
        )
        if held is None:
            async with state.database.begin() as conn:
                held = await holds.hold(
                    conn,
                    code=code,
                    customer=payload.customer,
                    order=payload.order,
                    skus=payload.products,
                    ttl=ttl,
                    now=now,
                    idempotency_key=key,
                )
        return 201, HoldOut.model_validate(held).model_dump(mode="json"), []

    async def confirm(scope: Scope, _ignored: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        hold_id = _hold_id(scope)
        await _admit(state, scope, headers)
        now = state.clock()
        done = await _lean(state, confirms, ConfirmAsk(hold_id, now))
        if done is None:
            async with state.database.begin() as conn:
                done = await holds.confirm(
                    conn,
                    hold_id=hold_id,
                    now=now,
                    late=state.settings.promocode_hold_late_confirm,
                )
        return 200, RedemptionOut.model_validate(done).model_dump(mode="json"), []

    async def release(scope: Scope, _ignored: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        hold_id = _hold_id(scope)
        await _admit(state, scope, headers)
        now = state.clock()
        done = await lean.release(state.database, hold_id=hold_id, now=now)
        if done is None:
            async with state.database.begin() as conn:
                done = await holds.release(conn, hold_id=hold_id, now=now)
        return 200, HoldOut.model_validate(done).model_dump(mode="json"), []

    return {
        ("POST", REDEEM_PATH): redeem,
        ("POST", HOLD_PATH): hold,
        ("POST", CONFIRM_PATH): confirm,
        ("POST", RELEASE_PATH): release,
    }
