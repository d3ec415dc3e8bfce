"""Webhooks: the billing callback and subscriptions, delivered from the outbox to a real HTTP
receiver on 127.0.0.1, signed, retried with backoff, never lost across a dispatcher restart.

Most tests drive a ``Dispatcher`` pass by pass on the test's FakeClock (no sleeping); one runs
the dispatcher the server starts in its lifespan, and one the ``promos worker`` command.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from promos.cli import main
from promos.clock import utc_now
from promos.events import service as events
from promos.events import signing
from promos.events.dispatcher import Dispatcher, RetryPolicy, claim
from promos.events.tables import webhook_attempts, webhook_deliveries, webhook_subscriptions
from promos.settings import Settings
from tests._receiver import ALLOWED_HOSTS, RECEIVER_DESTINATIONS, Received, Receiver
from tests.factories.events import make_callback
from tests.factories.referrals import make_program

SECRET = "billing secret, sixteen or more"
SUBSCRIPTION_SECRET = "subscriber's own secret"


@pytest.fixture
def in_server_dispatcher() -> bool:
    return False


@pytest.fixture
def settings(database_url: str, receiver: Receiver, in_server_dispatcher: bool) -> Settings:
    return Settings(
        database_url=database_url,
        referral_callback_url=f"{receiver.url}/billing/credit/%s",
        webhook_secret=SECRET,
        webhook_dispatcher=in_server_dispatcher,
        webhook_poll_seconds=0.05,
        webhook_allowed_hosts=ALLOWED_HOSTS,
    )


@pytest.fixture
def dispatcher(database, clock) -> Dispatcher:
    """A dispatcher on the test's clock: 1 s, 2 s, 4 s ... between attempts, 4 attempts."""
    return Dispatcher(
        database,
        clock=clock,
        callback_secret=SECRET,
        destinations=RECEIVER_DESTINATIONS,
        policy=RetryPolicy(max_attempts=4, base_seconds=1, max_seconds=60),
        timeout_seconds=2,
    )


def verified(request: Received, secret: str, now: int) -> bool:
    """The receiver's check: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    parts = dict(p.split("=", 1) for p in request.headers["promos-signature"].split(","))
    signed = parts["t"].encode() + b"." + request.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(parts["t"])) <= 300


async def register(client, auth, referrer: str = "alice", referred: str = "bob") -> None:
    response = await client.post(
        "/register/", json={"user_indicator": referrer, "user_indicated": referred}, headers=auth
    )
    assert response.status_code == 201, response.text


async def deliveries(database) -> list[Any]:
    async with database.begin() as conn:
        return list(
            await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        )


async def attempts(database, delivery_id: int) -> list[Any]:
    async with database.begin() as conn:
        return list(
            await conn.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id == delivery_id)
                .order_by(webhook_attempts.c.number)
            )
        )


# the billing callback


async def test_the_sign_up_callback_reaches_the_receiver_signed_as_form_fields(
    *, client, auth, database, clock, receiver, dispatcher
):
    program = await make_program(database, now=clock())
    await register(client, auth)

    assert await dispatcher.deliver_due() == 1

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/billing/credit/bob")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "amount": "10.00",
        "program_name": program.name,
        "user_indicator_hash": "alice",
    }
    assert verified(request, SECRET, int(clock().timestamp()))
    assert not verified(request, "another secret entirely", int(clock().timestamp()))
    [delivery] = await deliveries(database)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


async def test_a_held_reward_reaches_billing_when_its_hold_ends_not_before(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock(), target_value=Decimal(40), reward_hold_days=14)
    await register(client, auth)
    await client.put("/invoice/user/bob/", json={"total_amount_paid": 40}, headers=auth)

    sent_at_once = await dispatcher.deliver_due()
    clock.advance(days=14)
    sent_at_grant = await dispatcher.deliver_due()

    assert (sent_at_once, sent_at_grant) == (1, 1)
    assert [r.path for r in receiver.requests] == ["/billing/credit/bob", "/billing/credit/alice"]
    assert receiver.requests[1].form()["amount"] == "40.00"


async def test_a_voided_reward_never_reaches_billing(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock(), target_value=Decimal(40), reward_hold_days=14)
    await register(client, auth)
    await client.put("/invoice/user/bob/", json={"total_amount_paid": 40}, headers=auth)
    await client.post("/v1/referrals/payments/bob/refunds", json={"amount": 1}, headers=auth)
    clock.advance(days=15)

    assert await dispatcher.deliver_due() == 1
    assert [r.path for r in receiver.requests] == ["/billing/credit/bob"]


async def test_the_reward_callback_credits_the_referrer(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock(), target_value=Decimal(40))
    await register(client, auth)
    await client.put("/invoice/user/bob/", json={"total_amount_paid": 40}, headers=auth)

    assert await dispatcher.deliver_due() == 2

    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/billing/credit/alice", "/billing/credit/bob"]
    reward = next(r for r in receiver.requests if r.path.endswith("/alice"))
    assert reward.form()["amount"] == "40.00"
    assert reward.form()["user_indicator_hash"] == "alice"


async def test_a_500_is_retried_with_exponential_backoff_until_it_is_accepted(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    receiver.status = 500

    assert await dispatcher.deliver_due() == 1
    assert await dispatcher.deliver_due() == 0  # not due again before its backoff
    clock.advance(seconds=1)
    assert await dispatcher.deliver_due() == 1
    clock.advance(seconds=1)
    assert await dispatcher.deliver_due() == 0  # the second wait is 2 s
    receiver.status = 200
    clock.advance(seconds=1)
    assert await dispatcher.deliver_due() == 1

    [delivery] = await deliveries(database)
    assert delivery.status == "delivered"
    assert [a.status_code for a in await attempts(database, delivery.id)] == [500, 500, 200]
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1


async def test_a_receiver_that_is_down_gets_the_callback_when_it_is_back(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    await receiver.stop()

    assert await dispatcher.deliver_due() == 1
    [delivery] = await deliveries(database)
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert "Connect" in delivery.last_error

    await receiver.start()
    clock.advance(seconds=1)
    assert await dispatcher.deliver_due() == 1

    assert len(receiver.requests) == 1
    [delivery] = await deliveries(database)
    assert delivery.status == "delivered"


async def test_a_delivery_that_keeps_failing_is_failed_and_can_be_replayed(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    receiver.status = 503
    for _ in range(4):
        await dispatcher.deliver_due()
        clock.advance(minutes=1)
    [failed] = await deliveries(database)
    assert (failed.status, failed.attempts) == ("failed", 4)
    assert await dispatcher.deliver_due() == 0

    receiver.status = 200
    replay = await client.post(f"/v1/webhooks/deliveries/{failed.id}/replay", headers=admin_auth)
    assert replay.status_code == 202, replay.text
    assert replay.json()["replay_of"] == failed.id
    assert await dispatcher.deliver_due() == 1

    assert [r.form() for r in receiver.requests[-1:]] == [receiver.requests[0].form()]
    log = (await client.get(f"/v1/webhooks/deliveries/{failed.id}", headers=admin_auth)).json()
    assert [a["status_code"] for a in log["attempt_log"]] == [503, 503, 503, 503]
    new = (
        await client.get(f"/v1/webhooks/deliveries/{replay.json()['id']}", headers=admin_auth)
    ).json()
    assert new["status"] == "delivered"


# never lost: restarts and crashes


async def test_a_delivery_claimed_by_a_dispatcher_that_died_is_sent_by_the_next_one(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    async with database.begin() as conn:  # a dispatcher claims it, then dies before sending
        assert len(await claim(conn, now=clock(), lease=dispatcher.lease, limit=10)) == 1

    restarted = Dispatcher(database, clock=clock, callback_secret=SECRET, timeout_seconds=2)
    assert await restarted.deliver_due() == 0  # still leased to the one that died
    clock.advance(seconds=dispatcher.lease.total_seconds())
    assert await restarted.deliver_due() == 1
    await restarted.close()

    assert len(receiver.requests) == 1
    assert (await deliveries(database))[0].status == "delivered"


async def test_a_failed_attempt_is_retried_by_a_restarted_dispatcher(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    receiver.status = 500
    await dispatcher.deliver_due()
    await dispatcher.stop()

    receiver.status = 200
    restarted = Dispatcher(
        database,
        clock=clock,
        callback_secret=SECRET,
        policy=RetryPolicy(base_seconds=1),
        timeout_seconds=2,
    )
    clock.advance(seconds=1)
    assert await restarted.deliver_due() == 1
    await restarted.close()

    [delivery] = await deliveries(database)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


@pytest.mark.parametrize("in_server_dispatcher", [True])
async def test_the_server_delivers_the_callback_by_itself(client, auth, database, clock, receiver):
    await make_program(database, now=clock())

    await register(client, auth)

    [request] = await receiver.wait_for(1, timeout=10)
    assert request.path == "/billing/credit/bob"
    assert verified(request, SECRET, int(clock().timestamp()))


async def test_promos_worker_delivers_what_is_due(database_url, database, clock, receiver):
    await make_program(database, now=clock())
    await make_callback(database, url=f"{receiver.url}/billing/credit/bob", now=clock())
    env = {"PROMOS_DATABASE_URL": database_url, "PROMOS_WEBHOOK_SECRET": SECRET}

    result = await asyncio.to_thread(CliRunner().invoke, main, ["worker", "--once"], env=env)

    assert result.exit_code == 0, result.output
    assert "attempted 1 deliveries" in result.output
    [request] = receiver.requests
    assert request.form()["user_indicator_hash"] == "alice"
    assert "promos-signature" in request.headers


# subscriptions, the delivery log, replays


async def subscribe(client, admin_auth, receiver: Receiver, events_: list[str]) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks",
        json={"url": f"{receiver.url}/hooks", "events": events_, "secret": SUBSCRIPTION_SECRET},
        headers=admin_auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_subscription_receives_the_events_it_asked_for_as_signed_json(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock(), target_value=Decimal(20))
    subscription = await subscribe(client, admin_auth, receiver, ["referral.rewarded"])
    assert "secret" not in subscription
    await register(client, auth)
    await client.put("/invoice/user/bob/", json={"total_amount_paid": 20}, headers=auth)

    assert await dispatcher.deliver_due() == 3  # two callbacks, one webhook

    [hook] = [r for r in receiver.requests if r.path == "/hooks"]
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["promos-event"] == "referral.rewarded"
    body = orjson.loads(hook.body)
    assert body["type"] == "referral.rewarded"
    assert body["data"]["referrer"] == "alice"
    assert body["data"]["amount"] == 20
    assert verified(hook, SUBSCRIPTION_SECRET, int(clock().timestamp()))
    assert not verified(hook, SECRET, int(clock().timestamp()))


async def test_a_subscription_to_every_event_gets_each_one(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await subscribe(client, admin_auth, receiver, ["*"])
    async with database.begin() as conn:
        await events.emit(conn, "code.issued", {"code": "X-1"}, now=clock())
    await register(client, auth)

    await dispatcher.deliver_due()

    hooks = [orjson.loads(r.body)["type"] for r in receiver.requests if r.path == "/hooks"]
    assert sorted(hooks) == ["code.issued", "referral.signed_up"]


async def test_the_delivery_log_lists_and_filters_deliveries(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    await register(client, auth)
    await dispatcher.deliver_due()

    everything = await client.get("/v1/webhooks/deliveries", headers=admin_auth)
    callbacks = await client.get("/v1/webhooks/deliveries?kind=callback", headers=admin_auth)
    of_sub = await client.get(
        f"/v1/webhooks/deliveries?subscription_id={subscription['id']}", headers=admin_auth
    )

    assert everything.status_code == 200, everything.text
    assert len(everything.json()["items"]) == 2
    assert {d["status"] for d in everything.json()["items"]} == {"delivered"}
    assert [d["kind"] for d in callbacks.json()["items"]] == ["callback"]
    assert [d["subscription_id"] for d in of_sub.json()["items"]] == [subscription["id"]]
    detail = await client.get(
        f"/v1/webhooks/deliveries/{of_sub.json()['items'][0]['id']}", headers=admin_auth
    )
    assert [a["status_code"] for a in detail.json()["attempt_log"]] == [200]


async def test_deleting_a_subscription_cancels_its_pending_deliveries(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    await register(client, auth)

    deleted = await client.delete(f"/v1/webhooks/{subscription['id']}", headers=admin_auth)
    await dispatcher.deliver_due()

    assert deleted.json()["active"] is False
    assert [r.path for r in receiver.requests] == ["/billing/credit/bob"]
    statuses = sorted(d.status for d in await deliveries(database))
    assert statuses == ["cancelled", "delivered"]


async def test_webhook_routes_are_for_admins_only(client, auth):
    for method, path in (
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks/deliveries"),
        ("POST", "/v1/webhooks/deliveries/1/replay"),
        ("PATCH", "/v1/webhooks/1"),
        ("POST", "/v1/webhooks/1/test"),
    ):
        response = await client.request(method, path, headers=auth)
        assert response.status_code == 403, (path, response.text)


async def test_a_subscription_with_bad_input_is_refused_and_nothing_is_written(
    client, admin_auth, database
):
    for body in (
        {"url": "ftp://example.com/", "events": ["*"], "secret": SUBSCRIPTION_SECRET},
        {"url": "http://127.0.0.1:1/", "events": [], "secret": SUBSCRIPTION_SECRET},
        {"url": "http://127.0.0.1:1/", "events": ["Bad Event"], "secret": SUBSCRIPTION_SECRET},
        {"url": "http://127.0.0.1:1/", "events": ["*"], "secret": "short"},
    ):
        response = await client.post("/v1/webhooks", json=body, headers=admin_auth)
        assert response.status_code == 422, response.text
    async with database.begin() as conn:
        count = (
            await conn.execute(select(func.count()).select_from(webhook_subscriptions))
        ).scalar_one()
    assert count == 0


async def test_unknown_deliveries_and_subscriptions_are_a_404(client, admin_auth):
    for method, path in (
        ("GET", "/v1/webhooks/5"),
        ("DELETE", "/v1/webhooks/5"),
        ("GET", "/v1/webhooks/deliveries/5"),
        ("POST", "/v1/webhooks/deliveries/5/replay"),
        ("PATCH", "/v1/webhooks/5"),
        ("POST", "/v1/webhooks/5/test"),
    ):
        response = await client.request(method, path, headers=admin_auth, json={})
        assert response.status_code == 404, (path, response.text)


async def test_changing_a_subscription_s_event_types_applies_to_the_next_events(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])

    changed = await client.patch(
        f"/v1/webhooks/{subscription['id']}", json={"events": ["code.issued"]}, headers=admin_auth
    )
    await register(client, auth)
    async with database.begin() as conn:
        await events.emit(conn, "code.issued", {"code": "X-1"}, now=clock())
    await dispatcher.deliver_due()

    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["code.issued"]
    hooks = [orjson.loads(r.body)["type"] for r in receiver.requests if r.path == "/hooks"]
    assert hooks == ["code.issued"]


async def test_a_paused_subscription_gets_nothing_until_it_is_resumed(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    path = f"/v1/webhooks/{subscription['id']}"

    paused = await client.patch(path, json={"paused": True}, headers=admin_auth)
    await register(client, auth, "alice", "bob")
    await client.patch(path, json={"paused": False}, headers=admin_auth)
    await register(client, auth, "alice", "carol")
    await dispatcher.deliver_due()

    assert (paused.json()["active"], paused.json()["status"]) == (False, "paused")
    hooks = [
        orjson.loads(r.body)["data"]["referred"] for r in receiver.requests if r.path == "/hooks"
    ]
    assert hooks == ["carol"]


async def test_pausing_a_subscription_cancels_its_pending_deliveries(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    await register(client, auth)

    await client.patch(
        f"/v1/webhooks/{subscription['id']}", json={"paused": True}, headers=admin_auth
    )
    await dispatcher.deliver_due()

    assert [r.path for r in receiver.requests] == ["/billing/credit/bob"]
    assert sorted(d.status for d in await deliveries(database)) == ["cancelled", "delivered"]


async def test_a_delivery_of_a_paused_subscription_is_not_replayed(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    subscription = await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    await register(client, auth)
    await dispatcher.deliver_due()
    await client.patch(
        f"/v1/webhooks/{subscription['id']}", json={"paused": True}, headers=admin_auth
    )
    hook = next(d for d in await deliveries(database) if d.kind == "webhook")

    replay = await client.post(f"/v1/webhooks/deliveries/{hook.id}/replay", headers=admin_auth)

    assert replay.status_code == 409, replay.text
    assert "paused" in replay.json()["error"]["message"]
    assert len(await deliveries(database)) == 2


async def test_a_deleted_subscription_cannot_be_changed_or_tested(
    client, admin_auth, receiver, database
):
    subscription = await subscribe(client, admin_auth, receiver, ["*"])
    path = f"/v1/webhooks/{subscription['id']}"
    await client.delete(path, headers=admin_auth)

    changed = await client.patch(path, json={"paused": False}, headers=admin_auth)
    tested = await client.post(f"{path}/test", headers=admin_auth)

    assert (changed.status_code, tested.status_code) == (409, 409)
    assert "deleted" in changed.json()["error"]["message"]
    assert (await client.get(path, headers=admin_auth)).json()["status"] == "deleted"
    assert await deliveries(database) == []


async def test_a_test_event_goes_to_its_subscription_alone_signed(
    *, client, admin_auth, clock, receiver, dispatcher
):
    subscription = await subscribe(client, admin_auth, receiver, ["code.issued"])
    await subscribe(client, admin_auth, receiver, ["*"])

    sent = await client.post(f"/v1/webhooks/{subscription['id']}/test", headers=admin_auth)
    assert await dispatcher.deliver_due() == 1

    assert sent.status_code == 202, sent.text
    assert sent.json()["subscription_id"] == subscription["id"]
    [request] = receiver.requests
    assert request.headers["promos-event"] == "webhook.test"
    body = orjson.loads(request.body)
    assert (body["type"], body["data"]["subscription_id"]) == (
        "webhook.test",
        str(subscription["id"]),
    )
    assert verified(request, SUBSCRIPTION_SECRET, int(clock().timestamp()))


async def test_a_paused_subscription_is_not_sent_a_test_event(client, admin_auth, receiver):
    subscription = await subscribe(client, admin_auth, receiver, ["*"])
    path = f"/v1/webhooks/{subscription['id']}"
    await client.patch(path, json={"paused": True}, headers=admin_auth)

    tested = await client.post(f"{path}/test", headers=admin_auth)

    assert tested.status_code == 409, tested.text


async def test_each_attempt_keeps_the_start_of_the_receiver_s_answer(
    *, client, admin_auth, receiver, dispatcher
):
    subscription = await subscribe(client, admin_auth, receiver, ["*"])
    receiver.status, receiver.reply = 500, b"database down\x00" + "é".encode() * 600
    await client.post(f"/v1/webhooks/{subscription['id']}/test", headers=admin_auth)

    await dispatcher.deliver_due()

    [delivery] = (await client.get("/v1/webhooks/deliveries", headers=admin_auth)).json()["items"]
    detail = await client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=admin_auth)
    [attempt] = detail.json()["attempt_log"]
    assert attempt["status_code"] == 500
    assert attempt["response_excerpt"] == "database down\ufffd" + "é" * 486
    assert attempt["duration_ms"] >= 0


async def test_an_empty_answer_keeps_no_excerpt(*, client, admin_auth, receiver, dispatcher):
    subscription = await subscribe(client, admin_auth, receiver, ["*"])
    await client.post(f"/v1/webhooks/{subscription['id']}/test", headers=admin_auth)

    await dispatcher.deliver_due()

    [delivery] = (await client.get("/v1/webhooks/deliveries", headers=admin_auth)).json()["items"]
    detail = await client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=admin_auth)
    assert [a["response_excerpt"] for a in detail.json()["attempt_log"]] == [None]


# Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature


@pytest.fixture
def real_time_dispatcher(database) -> Dispatcher:
    """Signs with the real time: the receivers' libraries check it against their clock."""
    return Dispatcher(
        database, clock=utc_now, callback_secret=SECRET, destinations=RECEIVER_DESTINATIONS
    )


def standard_headers(request: Received) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.startswith("webhook-")}


async def test_a_subscription_without_a_secret_gets_a_whsec_secret_shown_once(client, admin_auth):
    response = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["*"]},
        headers=admin_auth,
    )

    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    listed = (await client.get("/v1/webhooks", headers=admin_auth)).json()["items"]
    assert "secret" not in listed[0]


async def test_a_subscription_with_a_null_secret_gets_a_whsec_secret_too(client, admin_auth):
    response = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": None},
        headers=admin_auth,
    )

    assert response.status_code == 201, response.text
    assert response.json()["secret"].startswith("whsec_")


@pytest.mark.parametrize("secret", ["a-long-secret\u202ewith-a-hidden-part", "a-long-secret\u0000"])
async def test_a_secret_with_a_hidden_character_is_a_422(client, admin_auth, secret):
    response = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": secret},
        headers=admin_auth,
    )

    assert response.status_code == 422, response.text


async def test_a_webhook_verifies_with_the_standardwebhooks_library(
    *, client, auth, admin_auth, database, clock, receiver, real_time_dispatcher
):
    await make_program(database, now=clock())
    response = await client.post(
        "/v1/webhooks",
        json={"url": f"{receiver.url}/hooks", "events": ["referral.signed_up"]},
        headers=admin_auth,
    )
    secret = response.json()["secret"]
    await register(client, auth)

    await real_time_dispatcher.deliver_due()
    await real_time_dispatcher.close()

    [hook] = [r for r in receiver.requests if r.path == "/hooks"]
    event = Webhook(secret).verify(hook.body, hook.headers)
    assert event["type"] == "referral.signed_up"
    assert hook.headers["webhook-id"] == f"webhook_{event['id']}"
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(hook.body, hook.headers)


async def test_a_secret_given_as_text_verifies_as_a_raw_secret(
    *, client, auth, admin_auth, database, clock, receiver, real_time_dispatcher
):
    await make_program(database, now=clock())
    await subscribe(client, admin_auth, receiver, ["referral.signed_up"])
    await register(client, auth)

    await real_time_dispatcher.deliver_due()
    await real_time_dispatcher.close()

    [hook] = [r for r in receiver.requests if r.path == "/hooks"]
    Webhook(SUBSCRIPTION_SECRET.encode()).verify(hook.body, hook.headers)


async def test_the_billing_callback_carries_the_standard_signature_too(
    *, client, auth, database, clock, receiver, real_time_dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)

    await real_time_dispatcher.deliver_due()
    await real_time_dispatcher.close()

    [callback] = receiver.requests
    Webhook(SECRET.encode()).verify(callback.body, callback.headers, json_parse=False)
    assert callback.headers["webhook-id"].startswith("callback_")
    assert verified(callback, SECRET, int(utc_now().timestamp()))  # and Promos-Signature


async def test_every_attempt_at_a_message_carries_its_one_webhook_id(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    await register(client, auth)
    receiver.status = 500
    await dispatcher.deliver_due()
    receiver.status = 200
    clock.advance(seconds=5)

    await dispatcher.deliver_due()

    first, second = (standard_headers(r) for r in receiver.requests)
    assert first["webhook-id"] == second["webhook-id"]
    assert int(second["webhook-timestamp"]) == int(first["webhook-timestamp"]) + 5
    now = int(clock().timestamp())
    assert signing.verify(SECRET, second, receiver.requests[1].body, now=now)
    assert not signing.verify(SECRET, first, receiver.requests[1].body + b"x", now=now)


# The test vector the Standard Webhooks specification publishes.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID, VECTOR_TIME, VECTOR_BODY = (
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    1614265330,
    b'{"test": 2432232314}',
)
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_specifications_on_its_test_vector():
    assert (
        signing.standard_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIME, VECTOR_BODY)
        == VECTOR_SIGNATURE
    )


@pytest.mark.parametrize(
    ("offered", "now", "valid"),
    [
        (VECTOR_SIGNATURE, VECTOR_TIME, True),
        (f"v1,bm90IGl0 {VECTOR_SIGNATURE}", VECTOR_TIME + 299, True),  # one of several
        (VECTOR_SIGNATURE, VECTOR_TIME + 301, False),  # too old
        (VECTOR_SIGNATURE, VECTOR_TIME - 301, False),  # from the future
        ("v1,bm90IGl0", VECTOR_TIME, False),
    ],
)
def test_verify_checks_the_signature_and_the_time(offered, now, valid):
    headers = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TIME),
        "Webhook-Signature": offered,
    }

    assert signing.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=now) is valid


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not base64 at all!",
        "whsec_" + base64.b64encode(b"x" * 16).decode(),  # 16 bytes: too short a key
    ],
)
async def test_a_malformed_whsec_secret_is_a_422(client, admin_auth, secret):
    response = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": secret},
        headers=admin_auth,
    )

    assert response.status_code == 422, response.text


def test_the_backoff_doubles_up_to_its_ceiling():
    policy = RetryPolicy(max_attempts=10, base_seconds=2, max_seconds=10)
    assert [policy.delay(n) for n in range(1, 6)] == [
        timedelta(seconds=s) for s in (2, 4, 8, 10, 10)
    ]


def test_a_callback_url_needs_the_webhook_secret():
    with pytest.raises(ValueError, match="PROMOS_WEBHOOK_SECRET"):
        Settings(referral_callback_url="http://billing.test/%s")
    settings = Settings.model_validate(
        {
            "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP": "http://billing.test/%s",
            "PROMOS_WEBHOOK_SECRET": SECRET,
        }
    )
    assert settings.referral_callback_url == "http://billing.test/%s"
