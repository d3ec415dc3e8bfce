"""Webhook subscriptions, the delivery log and replays, under ``/v1/webhooks`` (admin only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from promos.events import changes, service
from promos.events.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionUpdate,
)
from promos.events.signing import new_secret
from promos.http.deps import AdminPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.scopes import needs
from promos.state import AppState
from promos.validation import STORABLE, Id, PathId

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


# The delivery routes come first: "/deliveries" is not a subscription id.
@router.get("/deliveries", dependencies=[needs("webhooks", "read")])
async def list_deliveries(
    state: State,
    _: AdminPrincipal,
    *,
    subscription_id: Annotated[Id | None, Query(description="only this subscription's")] = None,
    kind: Annotated[
        Literal["callback", "webhook"] | None,
        Query(description="billing callbacks, or subscriptions' deliveries"),
    ] = None,
    delivery_status: Annotated[
        Literal["pending", "delivered", "failed", "cancelled"] | None,
        Query(alias="status", description="the deliveries in this state"),
    ] = None,
    event_type: Annotated[
        str | None, Query(max_length=100, pattern=STORABLE, description="e.g. code.issued")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DeliveryPage:
    """The delivery log, newest first: billing callbacks and subscriptions' deliveries."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_deliveries(
            conn,
            subscription_id=subscription_id,
            kind=kind,
            status=delivery_status,
            event_type=event_type,
            limit=limit,
            after_key=after_key,
        )
    return DeliveryPage(
        items=[DeliveryOut.model_validate(d) for d in page.items], **page_fields(page)
    )


@router.get(
    "/deliveries/{delivery_id}",
    dependencies=[needs("webhooks", "read")],
    responses={404: {"model": ErrorBody}},
)
async def get_delivery(delivery_id: PathId, state: State, _: AdminPrincipal) -> DeliveryDetail:
    """One delivery, its body, and every attempt made at it."""
    async with state.database.begin() as conn:
        return DeliveryDetail.model_validate(await service.get_delivery(conn, delivery_id))


@router.post(
    "/deliveries/{delivery_id}/replay",
    dependencies=[needs("webhooks", "manage")],
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def replay_delivery(
    delivery_id: PathId, state: State, principal: AdminPrincipal
) -> DeliveryDetail:
    """Send a delivery's body again, as a new delivery that is due now (409 if its
    subscription is paused or deleted)."""
    async with state.database.begin() as conn:
        replayed = await changes.replay_delivery(
            conn, actor=principal, delivery_id=delivery_id, now=state.clock()
        )
    wake_dispatcher(state)
    return DeliveryDetail.model_validate(replayed)


@router.post(
    "",
    dependencies=[needs("webhooks", "manage")],
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_none=True,
)
async def create_subscription(
    body: SubscriptionCreate, state: State, principal: AdminPrincipal
) -> SubscriptionCreated:
    """Send these events to this URL, signed with this secret (or one Promos makes), from now
    on. A URL whose host is or resolves to a loopback, private or link-local address is a 422
    unless PROMOS_WEBHOOK_ALLOWED_HOSTS allows it."""
    url = str(body.url)
    await state.webhook_destinations.check_url(url)
    secret = body.secret or new_secret()
    async with state.database.begin() as conn:
        created = await changes.create_subscription(
            conn,
            actor=principal,
            url=url,
            event_types=body.events,
            secret=secret,
            now=state.clock(),
        )
    shown = SubscriptionCreated.model_validate(created)
    return shown if body.secret else shown.model_copy(update={"secret": secret})


@router.get("", dependencies=[needs("webhooks", "read")])
async def list_subscriptions(
    state: State, _: AdminPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> SubscriptionPage:
    """Subscriptions (stopped ones too), oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_subscriptions(conn, limit=limit, after_key=after_key)
    return SubscriptionPage(
        items=[SubscriptionOut.model_validate(s) for s in page.items], **page_fields(page)
    )


@router.get(
    "/{subscription_id}",
    dependencies=[needs("webhooks", "read")],
    responses={404: {"model": ErrorBody}},
)
async def get_subscription(
    subscription_id: PathId, state: State, _: AdminPrincipal
) -> SubscriptionOut:
    async with state.database.begin() as conn:
        return SubscriptionOut.model_validate(await service.get_subscription(conn, subscription_id))


@router.delete(
    "/{subscription_id}",
    dependencies=[needs("webhooks", "manage")],
    responses={404: {"model": ErrorBody}},
)
async def delete_subscription(
    subscription_id: PathId, state: State, principal: AdminPrincipal
) -> SubscriptionOut:
    """Stop the subscription; its pending deliveries are cancelled, its log stays."""
    async with state.database.begin() as conn:
        stopped = await changes.delete_subscription(
            conn, actor=principal, subscription_id=subscription_id, now=state.clock()
        )
    return SubscriptionOut.model_validate(stopped)


@router.patch(
    "/{subscription_id}",
    dependencies=[needs("webhooks", "manage")],
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def update_subscription(
    subscription_id: PathId, body: SubscriptionUpdate, state: State, principal: AdminPrincipal
) -> SubscriptionOut:
    """Change the event types sent (from the next event on), or pause or resume it; a
    deleted subscription cannot be changed (409)."""
    async with state.database.begin() as conn:
        changed = await changes.update_subscription(
            conn,
            actor=principal,
            subscription_id=subscription_id,
            event_types=body.events,
            paused=body.paused,
            now=state.clock(),
        )
    return SubscriptionOut.model_validate(changed)


@router.post(
    "/{subscription_id}/test",
    dependencies=[needs("webhooks", "manage")],
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def send_test(
    subscription_id: PathId, state: State, principal: AdminPrincipal
) -> DeliveryDetail:
    """Send a ``webhook.test`` event to this subscription alone, now (409 if it is paused
    or deleted). Its delivery is in the log like any other."""
    async with state.database.begin() as conn:
        delivery = await changes.send_test(
            conn, actor=principal, subscription_id=subscription_id, now=state.clock()
        )
    wake_dispatcher(state)
    return DeliveryDetail.model_validate(delivery)


def wake_dispatcher(state: AppState) -> None:
    """Deliver what a committed change queued now, not at the next poll."""
    if state.dispatcher is not None:
        state.dispatcher.wake()
