"""Webhooks (admins only, as the API): subscriptions (create with the secret shown once, edit
event types, pause, resume, delete, send a test event) and the delivery log of webhooks and
billing callbacks (filters, each attempt, replay one or many).

Forms are read with the API's own bodies; changes go through ``promos.events.changes`` with
the signed-in person as actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import FormData
from starlette.responses import Response

from promos.console import sessions
from promos.console.deps import PREFIX, Admin, render, see_other
from promos.console.forms import TIME_ERROR, Form, parse, utc_time
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.errors import InvalidInput
from promos.events import changes, service
from promos.events.errors import DeliveryNotFound, DestinationRefused
from promos.events.outbox import ALL_EVENTS
from promos.events.schemas import SubscriptionCreate, SubscriptionUpdate
from promos.events.service import TEST_EVENT
from promos.events.signing import new_secret
from promos.events.types import EVENT_TYPES
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.pagination import Page
from promos.state import AppState

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

WEBHOOKS = f"{PREFIX}/webhooks"
DELIVERIES = f"{WEBHOOKS}/deliveries"
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
# At most one page of the log is replayed at once.
MAX_REPLAY = PAGE_SIZE
EVENT_CHOICES = (*EVENT_TYPES, TEST_EVENT)
LOG_STATUSES = {
    "failing": "Failing (given up, or to be tried again)",
    "pending": "Pending",
    "delivered": "Delivered",
    "failed": "Failed (given up)",
    "cancelled": "Cancelled",
}


def _checked(data: FormData) -> str:
    """The event types ticked, as the one text value the form models read."""
    return ",".join(str(v) for v in data.getlist("events"))


def _events_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    return value


class NewSubscription(SubscriptionCreate):
    """The API's body, read from a form: the event types ticked, a blank secret unset."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("events", mode="before")
    @classmethod
    def _ticked(cls, value: Any) -> Any:
        return _events_list(value)

    @field_validator("secret", mode="before")
    @classmethod
    def _blank_secret(cls, value: Any) -> Any:
        return (value or None) if isinstance(value, str) else value

    @field_validator("url", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class EventTypes(SubscriptionUpdate):
    model_config = ConfigDict(extra="ignore")

    @field_validator("events", mode="before")
    @classmethod
    def _ticked(cls, value: Any) -> Any:
        return _events_list(value)


_EVENT_MESSAGES = {"events": {"too_short": "Tick one or more event types, or every event."}}


class LogFilter(BaseModel):
    event_type: Literal[EVENT_CHOICES] | None = None  # type: ignore[valid-type]
    status: Literal["failing", "pending", "delivered", "failed", "cancelled"] | None = None
    kind: Literal["webhook", "callback"] | None = None
    subscription_id: Annotated[int | None, Field(ge=1, le=2**63 - 1)] = None
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return utc_time(value) if isinstance(value, str) else value


_LOG_MESSAGES = {
    "since": {"value_error": TIME_ERROR},
    "until": {"value_error": TIME_ERROR},
    "subscription_id": {"int_parsing": "A subscription's number, e.g. 3."},
}


def _wake(state: AppState) -> None:
    """Send what was just committed now, not at the dispatcher's next poll."""
    if state.dispatcher is not None:
        state.dispatcher.wake()


# --- the delivery log (before /webhooks/{id}: "deliveries" is no subscription) ---------------


@router.get("/webhooks/deliveries")
async def deliveries(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Webhooks and billing callbacks, newest first, filtered."""
    filters, form = parse(LogFilter, request.query_params, messages=_LOG_MESSAGES)
    page: Page[service.Delivery] = Page([], None)
    if filters is not None:
        async with state.database.read() as conn:
            page = await service.list_deliveries(
                conn,
                event_type=filters.event_type,
                status=None if filters.status == "failing" else filters.status,
                failing=filters.status == "failing",
                kind=filters.kind,
                subscription_id=filters.subscription_id,
                since=filters.since,
                until=filters.until,
                limit=PAGE_SIZE,
                after_key=decode_cursor(after, (int,)),
            )
    return render(
        request,
        "webhooks/deliveries.html",
        {
            "title": "Webhook deliveries",
            "form": form,
            "deliveries": page.items,
            "event_options": [("", "Any"), *((e, e) for e in EVENT_CHOICES)],
            "status_options": [("", "Any"), *LOG_STATUSES.items()],
            "filtered": any(form.values.get(name) for name in LogFilter.model_fields),
            "back": str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            **pager(request, page, after),
        },
        status_code=200 if form.ok else 422,
    )


@router.post("/webhooks/deliveries/replay")
async def replay_many(request: Request, state: State, person: Admin) -> Response:
    """Replay the deliveries ticked in the log: all of them, or none (nothing half-done)."""
    data = await request.form()
    back = _log_path(data.get("back"))
    ids = _ids(data.getlist("ids"))
    async with state.database.begin() as conn:
        if not ids:
            message = "Tick the deliveries to replay first."
        else:
            for delivery_id in ids:
                await changes.replay_delivery(
                    conn, actor=person.principal, delivery_id=delivery_id, now=state.clock()
                )
            count = len(ids)
            message = f"{count} deliver{'y' if count == 1 else 'ies'} replayed: due now."
        await sessions.set_flash(conn, person.id, message)
    if ids:
        _wake(state)
    return see_other(back)


def _ids(values: list[Any]) -> list[int]:
    """The ticked deliveries' ids (each once, in order), at most a page of them."""
    found: list[int] = []
    for value in values:
        if isinstance(value, str) and value.isdigit() and 0 < int(value) < 2**63:
            if int(value) not in found:
                found.append(int(value))
        else:
            raise DeliveryNotFound(f"there is no delivery {str(value)[:40]!r}")
    if len(found) > MAX_REPLAY:
        raise InvalidInput(f"at most {MAX_REPLAY} deliveries at once")
    return found


def _log_path(value: Any) -> str:
    """Back to the log as it was filtered; only ever a path of the log."""
    if isinstance(value, str) and value.startswith(DELIVERIES) and "//" not in value:
        return value
    return DELIVERIES


@router.get("/webhooks/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: Id, state: State, _: Admin) -> Response:
    """One delivery: where it goes, its body, every attempt and what the receiver answered."""
    async with state.database.read() as conn:
        delivery = await service.get_delivery(conn, delivery_id)
    return render(
        request,
        "webhooks/delivery.html",
        {"title": f"Delivery {delivery.id}", "delivery": delivery},
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
async def replay_one(delivery_id: Id, state: State, person: Admin) -> Response:
    async with state.database.begin() as conn:
        replayed = await changes.replay_delivery(
            conn, actor=person.principal, delivery_id=delivery_id, now=state.clock()
        )
        await sessions.set_flash(
            conn, person.id, f"Delivery {delivery_id} replayed as delivery {replayed.id}: due now."
        )
    _wake(state)
    return see_other(f"{DELIVERIES}/{replayed.id}")


# --- subscriptions ---------------------------------------------------------------------------


@router.get("/webhooks")
async def subscriptions(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Subscriptions (paused and deleted ones too), oldest first."""
    async with state.database.read() as conn:
        page = await service.list_subscriptions(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
        )
    return render(
        request,
        "webhooks/list.html",
        {"title": "Webhooks", "subscriptions": page.items, **pager(request, page, after)},
    )


def _new_form(request: Request, form: Form, *, status_code: int = 200) -> Response:
    return render(
        request,
        "webhooks/new.html",
        {
            "title": "New webhook subscription",
            "form": form,
            "event_types": EVENT_TYPES,
            "all_events": ALL_EVENTS,
            "ticked": set(_events_list(form.value("events"))),
        },
        status_code=status_code,
    )


@router.get("/webhooks/new")
async def new_subscription(request: Request, _: Admin) -> Response:
    return _new_form(request, Form())


@router.post("/webhooks/new")
async def create_subscription(request: Request, state: State, person: Admin) -> Response:
    """A new subscription; a secret Promos makes is shown in this answer, and never again."""
    data = await request.form()
    posted = {
        "url": data.get("url", ""),
        "secret": data.get("secret", ""),
        "events": _checked(data),
    }
    values, form = parse(NewSubscription, posted, messages=_EVENT_MESSAGES)
    form.values.pop("secret", None)  # a secret is never shown back
    if values is None:
        return _new_form(request, form, status_code=422)
    url = str(values.url)
    try:
        await state.webhook_destinations.check_url(url)
    except DestinationRefused as exc:
        form.fail("url", exc.message)
        return _new_form(request, form, status_code=422)
    secret = values.secret or new_secret()
    async with state.database.begin() as conn:
        created = await changes.create_subscription(
            conn,
            actor=person.principal,
            url=url,
            event_types=values.events,
            secret=secret,
            now=state.clock(),
        )
        if values.secret:
            await sessions.set_flash(conn, person.id, f"Subscription {created.id} created.")
    if values.secret:
        return see_other(f"{WEBHOOKS}/{created.id}")
    return render(
        request,
        "webhooks/created.html",
        {"title": "Subscription created", "subscription": created, "secret": secret},
    )


def _subscription_page(
    request: Request, subscription: service.Subscription, form: Form, *, status_code: int = 200
) -> Response:
    return render(
        request,
        "webhooks/subscription.html",
        {
            "title": f"Subscription {subscription.id}",
            "subscription": subscription,
            "form": form,
            "event_types": EVENT_TYPES,
            "all_events": ALL_EVENTS,
            "ticked": set(_events_list(form.value("events"))),
        },
        status_code=status_code,
    )


@router.get("/webhooks/{subscription_id}")
async def subscription_page(
    request: Request, subscription_id: Id, state: State, _: Admin
) -> Response:
    async with state.database.read() as conn:
        subscription = await service.get_subscription(conn, subscription_id)
    form = Form({"events": ",".join(subscription.event_types)})
    return _subscription_page(request, subscription, form)


@router.post("/webhooks/{subscription_id}/events")
async def change_events(
    request: Request, subscription_id: Id, state: State, person: Admin
) -> Response:
    """New event types, sent from the next event on."""
    values, form = parse(
        EventTypes, {"events": _checked(await request.form())}, messages=_EVENT_MESSAGES
    )
    if values is None or values.events is None:
        async with state.database.begin() as conn:
            subscription = await service.get_subscription(conn, subscription_id)
        return _subscription_page(request, subscription, form, status_code=422)
    async with state.database.begin() as conn:
        await changes.update_subscription(
            conn,
            actor=person.principal,
            subscription_id=subscription_id,
            event_types=values.events,
            now=state.clock(),
        )
        await sessions.set_flash(conn, person.id, "Event types saved.")
    return see_other(f"{WEBHOOKS}/{subscription_id}")


async def _pause(state: AppState, person: Admin, subscription_id: int, *, paused: bool) -> Response:
    async with state.database.begin() as conn:
        await changes.update_subscription(
            conn,
            actor=person.principal,
            subscription_id=subscription_id,
            paused=paused,
            now=state.clock(),
        )
        said = (
            "Paused: it gets no events, and its pending deliveries were cancelled."
            if paused
            else "Resumed: it gets the events that happen from now on."
        )
        await sessions.set_flash(conn, person.id, said)
    return see_other(f"{WEBHOOKS}/{subscription_id}")


@router.post("/webhooks/{subscription_id}/pause")
async def pause(subscription_id: Id, state: State, person: Admin) -> Response:
    return await _pause(state, person, subscription_id, paused=True)


@router.post("/webhooks/{subscription_id}/resume")
async def resume(subscription_id: Id, state: State, person: Admin) -> Response:
    return await _pause(state, person, subscription_id, paused=False)


@router.post("/webhooks/{subscription_id}/delete")
async def delete(subscription_id: Id, state: State, person: Admin) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_subscription(
            conn, actor=person.principal, subscription_id=subscription_id, now=state.clock()
        )
        await sessions.set_flash(
            conn, person.id, f"Subscription {subscription_id} deleted: its log stays."
        )
    return see_other(WEBHOOKS)


@router.post("/webhooks/{subscription_id}/test")
async def send_test(subscription_id: Id, state: State, person: Admin) -> Response:
    """A webhook.test event to this subscription alone; its delivery's page follows it."""
    async with state.database.begin() as conn:
        delivery = await changes.send_test(
            conn, actor=person.principal, subscription_id=subscription_id, now=state.clock()
        )
        await sessions.set_flash(conn, person.id, "Test event sent: reload to see its attempt.")
    _wake(state)
    return see_other(f"{DELIVERIES}/{delivery.id}")
