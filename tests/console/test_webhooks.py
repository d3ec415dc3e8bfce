"""Webhooks in the console (admins only): subscriptions created (the secret shown once),
changed, paused, resumed, deleted and sent a test event, audited; the delivery log of
webhooks and billing callbacks, filtered, each attempt's answer, replays of one or many."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.events import service
from promos.events.dispatcher import Dispatcher, RetryPolicy
from promos.events.tables import webhook_subscriptions
from promos.settings import Settings
from tests._receiver import ALLOWED_HOSTS, RECEIVER_DESTINATIONS, Receiver
from tests.console.conftest import csrf_token, submit
from tests.factories.events import make_callback

SECRET = "the subscriber's own secret"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, webhook_dispatcher=False, webhook_allowed_hosts=ALLOWED_HOSTS
    )


@pytest.fixture
def dispatcher(database, clock) -> Dispatcher:
    """A dispatcher on the test's clock: three attempts, 1 s and 2 s apart."""
    return Dispatcher(
        database,
        clock=clock,
        callback_secret=None,
        destinations=RECEIVER_DESTINATIONS,
        policy=RetryPolicy(max_attempts=3, base_seconds=1, max_seconds=60),
        timeout_seconds=2,
    )


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))


def _listed(html: str) -> list[int]:
    """The deliveries of a page of the log, in order."""
    return [int(n) for n in re.findall(r'name="ids" value="(\d+)"', html)]


async def _subscribe(as_admin, url: str, events: list[str], secret: str = SECRET) -> int:
    opened = await as_admin.get("/admin/webhooks/new")
    data = {"csrf_token": csrf_token(opened.text), "url": url, "secret": secret, "events": events}
    response = await as_admin.post("/admin/webhooks/new", data=data)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


async def _subscriptions(database) -> list[service.Subscription]:
    async with database.begin() as conn:
        return (await service.list_subscriptions(conn, limit=10)).items


async def _deliveries(database, **filters) -> list[service.Delivery]:
    async with database.begin() as conn:
        return (await service.list_deliveries(conn, **filters)).items


async def _actions(database, action):
    async with database.begin() as conn:
        return (await audit.list_entries(conn, query=AuditQuery(action=action), limit=5)).items


async def test_sales_is_neither_shown_nor_served_the_webhook_pages(as_sales):
    home = await as_sales.get("/admin")

    assert 'href="/admin/webhooks"' not in home.text
    for path in ("/admin/webhooks", "/admin/webhooks/new", "/admin/webhooks/deliveries"):
        assert (await as_sales.get(path)).status_code == 403, path


async def test_a_subscription_without_a_secret_shows_the_one_promos_made_once(as_admin, database):
    response = await submit(
        as_admin,
        "/admin/webhooks/new",
        "/admin/webhooks/new",
        {"url": "https://hooks.example.com/promos", "events": "*", "secret": ""},
    )

    assert response.status_code == 200
    shown = re.search(r'<code id="secret">(whsec_[A-Za-z0-9+/=]+)</code>', response.text)
    assert shown is not None
    async with database.begin() as conn:
        stored = (await conn.execute(select(webhook_subscriptions.c.secret))).scalar_one()
    assert stored == shown.group(1)
    [subscription] = await _subscriptions(database)
    page = await as_admin.get(f"/admin/webhooks/{subscription.id}")
    assert shown.group(1) not in page.text
    [entry] = await _actions(database, "webhook.create")
    assert entry.actor_name == "ada"
    assert shown.group(1) not in str(entry.after)


async def test_a_subscription_with_its_own_secret_never_shows_it(as_admin, database):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["code.issued"])

    page = await as_admin.get(f"/admin/webhooks/{subscription}")

    assert "Subscription 1 created." in page.text
    assert SECRET not in page.text
    [made] = await _subscriptions(database)
    assert made.event_types == ["code.issued"]


async def test_bad_subscription_input_is_shown_by_its_field_and_nothing_is_written(
    as_admin, database
):
    response = await submit(
        as_admin,
        "/admin/webhooks/new",
        "/admin/webhooks/new",
        {"url": "ftp://example.com/", "secret": "short"},
    )

    assert response.status_code == 422
    errors = _errors(response.text)
    assert set(errors) == {"url", "events", "secret"}
    assert errors["events"] == "Tick one or more event types, or every event."
    assert 'value="short"' not in response.text
    assert await _subscriptions(database) == []


async def test_a_private_address_is_refused_by_the_url_field(as_admin, database):
    response = await submit(
        as_admin,
        "/admin/webhooks/new",
        "/admin/webhooks/new",
        {"url": "http://10.1.2.3/hook", "events": "*", "secret": SECRET},
    )

    assert response.status_code == 422
    assert "PROMOS_WEBHOOK_ALLOWED_HOSTS" in _errors(response.text)["url"]
    assert await _subscriptions(database) == []


async def test_changing_the_event_types_saves_them_audited(as_admin, database):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["code.issued"])
    page = f"/admin/webhooks/{subscription}"

    opened = await as_admin.get(page)
    data = {
        "csrf_token": csrf_token(opened.text),
        "events": ["offer.claimed", "referral.rewarded"],
    }
    response = await as_admin.post(f"{page}/events", data=data)

    assert response.status_code == 303
    [changed] = await _subscriptions(database)
    assert changed.event_types == ["offer.claimed", "referral.rewarded"]
    [entry] = await _actions(database, "webhook.update")
    assert entry.before["event_types"] == ["code.issued"]


async def test_no_event_type_ticked_is_refused_by_the_field(as_admin, database):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["code.issued"])
    page = f"/admin/webhooks/{subscription}"

    response = await submit(as_admin, page, f"{page}/events")

    assert response.status_code == 422
    assert _errors(response.text) == {"events": "Tick one or more event types, or every event."}
    [kept] = await _subscriptions(database)
    assert kept.event_types == ["code.issued"]


async def test_pausing_and_resuming_a_subscription(as_admin, database):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["*"])
    page = f"/admin/webhooks/{subscription}"

    await submit(as_admin, page, f"{page}/pause")
    paused = await as_admin.get(page)
    [stopped] = await _subscriptions(database)
    await submit(as_admin, page, f"{page}/resume")

    assert stopped.status == "paused"
    assert "Paused: it gets no events" in paused.text
    assert f'action="{page}/resume"' in paused.text
    [resumed] = await _subscriptions(database)
    assert resumed.status == "active"
    assert len(await _actions(database, "webhook.update")) == 2


async def test_a_deleted_subscription_is_listed_as_deleted_with_nothing_to_do(as_admin, database):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["*"])
    page = f"/admin/webhooks/{subscription}"

    response = await submit(as_admin, page, f"{page}/delete")
    listed = await as_admin.get("/admin/webhooks")
    opened = await as_admin.get(page)

    assert response.status_code == 303
    assert "Deleted" in listed.text
    assert f'action="{page}/test"' not in opened.text
    assert f'action="{page}/events"' not in opened.text
    [entry] = await _actions(database, "webhook.delete")
    assert entry.actor_name == "ada"


async def test_a_test_event_is_delivered_and_its_attempt_shown(
    as_admin, database, receiver: Receiver, dispatcher
):
    subscription = await _subscribe(as_admin, f"{receiver.url}/hooks", ["code.issued"])
    page = f"/admin/webhooks/{subscription}"
    receiver.reply = b'{"ok": true}'

    response = await submit(as_admin, page, f"{page}/test")
    await dispatcher.deliver_due()
    delivery = await as_admin.get(response.headers["location"])

    assert response.status_code == 303
    [request] = receiver.requests
    assert request.headers["promos-event"] == "webhook.test"
    attempts = delivery.text.split('id="attempts"', 1)[1]
    assert "HTTP 200" in attempts
    assert " ms</td>" in attempts
    assert "{&#34;ok&#34;: true}" in attempts
    [entry] = await _actions(database, "webhook.test")
    assert entry.actor_name == "ada"


async def test_the_log_holds_billing_callbacks_and_webhooks_filtered_by_kind(
    as_admin, database, clock
):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["*"])
    await make_callback(database, url="https://billing.example.com/credit", now=clock())

    everything = await as_admin.get("/admin/webhooks/deliveries")
    callbacks = await as_admin.get("/admin/webhooks/deliveries", params={"kind": "callback"})
    webhooks = await as_admin.get(
        "/admin/webhooks/deliveries", params={"subscription_id": subscription}
    )

    [callback] = await _deliveries(database, kind="callback")
    [webhook] = await _deliveries(database, kind="webhook")
    assert _listed(everything.text) == [callback.id, webhook.id]  # newest first
    assert "Billing callback" in everything.text
    assert _listed(callbacks.text) == [callback.id]
    assert _listed(webhooks.text) == [webhook.id]


async def test_the_log_filters_by_event_type_and_time(as_admin, database, clock):
    await make_callback(database, url="https://billing.example.com/credit", now=clock())
    clock.advance(minutes=20)
    async with database.begin() as conn:
        await service.create_subscription(
            conn, url="https://hooks.example.com/a", event_types=["*"], secret=SECRET, now=clock()
        )
        await service.emit(conn, "code.issued", {"code": "X"}, now=clock())
    [issued, callback] = await _deliveries(database)

    by_type = await as_admin.get("/admin/webhooks/deliveries", params={"event_type": "code.issued"})
    since = await as_admin.get("/admin/webhooks/deliveries", params={"since": "2026-03-01T12:10"})
    until = await as_admin.get("/admin/webhooks/deliveries", params={"until": "2026-03-01T12:10"})

    assert issued.event_type == "code.issued"
    assert _listed(by_type.text) == [issued.id]
    assert _listed(since.text) == [issued.id]
    assert _listed(until.text) == [callback.id]


async def test_a_bad_log_filter_is_shown_by_its_field(as_admin):
    response = await as_admin.get(
        "/admin/webhooks/deliveries", params={"since": "yesterday", "status": "lost"}
    )

    assert response.status_code == 422
    errors = _errors(response.text)
    assert errors["since"] == "A date and time in UTC, e.g. 2026-03-01T12:00."
    assert set(errors) == {"since", "status"}


async def test_a_failing_delivery_is_in_the_failing_filter_until_a_replay_gets_through(
    as_admin, database, clock, receiver: Receiver, dispatcher
):
    await _subscribe(as_admin, f"{receiver.url}/hooks", ["*"])
    await make_callback(database, url=f"{receiver.url}/credit", now=clock())
    receiver.status, receiver.reply = 500, b"receiver broken"
    for _ in range(3):  # every attempt fails: the callback is given up
        await dispatcher.deliver_due()
        clock.advance(seconds=10)
    [callback, hook] = await _deliveries(database)
    assert (hook.status, callback.status) == ("failed", "failed")

    failing = await as_admin.get("/admin/webhooks/deliveries", params={"status": "failing"})
    assert _listed(failing.text) == [callback.id, hook.id]
    data = {"csrf_token": csrf_token(failing.text), "ids": [str(hook.id), str(callback.id)]}
    data["back"] = "/admin/webhooks/deliveries?status=failing"
    replayed = await as_admin.post("/admin/webhooks/deliveries/replay", data=data)
    receiver.status = 200
    await dispatcher.deliver_due()

    assert replayed.headers["location"] == "/admin/webhooks/deliveries?status=failing"
    after = await as_admin.get(replayed.headers["location"])
    assert "2 deliveries replayed: due now." in after.text
    assert _listed(after.text) == [callback.id, hook.id]  # still failed: replays are new
    delivered = await _deliveries(database, status="delivered")
    assert sorted(d.replay_of for d in delivered) == [hook.id, callback.id]
    assert len(await _actions(database, "webhook_delivery.replay")) == 2


async def test_replaying_one_delivery_opens_the_new_one(as_admin, database, clock):
    await make_callback(database, url="https://billing.example.com/credit", now=clock())
    [callback] = await _deliveries(database)
    page = f"/admin/webhooks/deliveries/{callback.id}"

    response = await submit(as_admin, page, f"{page}/replay")

    [replay, _] = await _deliveries(database)
    assert response.headers["location"] == f"/admin/webhooks/deliveries/{replay.id}"
    opened = await as_admin.get(response.headers["location"])
    assert f"Delivery {callback.id} replayed as delivery {replay.id}" in opened.text
    assert f'href="/admin/webhooks/deliveries/{callback.id}"' in opened.text


async def test_replaying_with_nothing_ticked_says_so_and_changes_nothing(as_admin, database, clock):
    await make_callback(database, url="https://billing.example.com/credit", now=clock())

    response = await submit(
        as_admin, "/admin/webhooks/deliveries", "/admin/webhooks/deliveries/replay"
    )

    after = await as_admin.get(response.headers["location"])
    assert "Tick the deliveries to replay first." in after.text
    assert len(await _deliveries(database)) == 1


async def test_a_replay_of_many_that_cannot_all_be_made_makes_none(as_admin, database, clock):
    subscription = await _subscribe(as_admin, "https://hooks.example.com/a", ["*"])
    await make_callback(database, url="https://billing.example.com/credit", now=clock())
    [callback, hook] = await _deliveries(database)
    page = f"/admin/webhooks/{subscription}"
    await submit(as_admin, page, f"{page}/pause")

    response = await submit(
        as_admin,
        "/admin/webhooks/deliveries",
        "/admin/webhooks/deliveries/replay",
        {"ids": [str(callback.id), str(hook.id)]},
    )

    assert response.status_code == 409
    assert "paused" in response.text
    assert len(await _deliveries(database)) == 2


async def test_the_dashboard_s_failing_deliveries_link_to_the_log_s_failures(as_admin):
    home = await as_admin.get("/admin")

    assert 'href="/admin/webhooks/deliveries?status=failing"' in home.text
