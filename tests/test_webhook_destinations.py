"""Webhooks go to public addresses only, unless PROMOS_WEBHOOK_ALLOWED_HOSTS allows others:
checked when a subscription is made, and again on the addresses each delivery connects to.

No test here sends anything anywhere but to the loopback: refused destinations are refused
before any connection, and the resolver of the rebinding tests is the test's own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from promos.events import service as events
from promos.events.destinations import Destinations, kind_of, parse_allowed
from promos.events.dispatcher import Dispatcher
from promos.events.tables import webhook_subscriptions
from promos.settings import Settings
from tests._receiver import Receiver
from tests.factories.events import make_callback
from tests.factories.referrals import make_program

SECRET = "subscriber's own secret"
BILLING_SECRET = "billing secret, sixteen or more"
PUBLIC = "93.184.215.14"  # a public address, given by the tests' own resolver: never connected


@pytest.fixture
def allowed_hosts() -> str:
    return ""


@pytest.fixture
def settings(settings: Settings, allowed_hosts: str) -> Settings:
    # No dispatcher in the server: nothing here may try to deliver on its own.
    return settings.model_copy(
        update={"webhook_allowed_hosts": allowed_hosts, "webhook_dispatcher": False}
    )


async def subscribe(client, admin_auth, url: str):
    return await client.post(
        "/v1/webhooks", json={"url": url, "events": ["*"], "secret": SECRET}, headers=admin_auth
    )


def hooks_received(receiver: Receiver) -> list[str]:
    """What reached the receiver's webhook path (another process may knock on its port)."""
    return [r.path for r in receiver.requests if r.path == "/hooks"]


async def subscriptions(database) -> int:
    async with database.begin() as conn:
        query = select(func.count()).select_from(webhook_subscriptions)
        return int((await conn.execute(query)).scalar_one())


# --- when a subscription is made ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.10:8080/hooks",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:8080/",  # a name that resolves to the loopback
    ],
)
async def test_a_subscription_to_a_non_public_address_is_a_422_naming_the_setting(
    client, admin_auth, database, url
):
    response = await subscribe(client, admin_auth, url)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "webhook_destination_refused"
    assert "PROMOS_WEBHOOK_ALLOWED_HOSTS" in error["message"]
    assert await subscriptions(database) == 0


@pytest.mark.parametrize(
    ("allowed_hosts", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9/hooks"),
        ("127.0.0.0/8, ::1", "http://[::1]:9/hooks"),
        ("localhost", "http://localhost:9/hooks"),
    ],
)
async def test_a_subscription_to_an_allowed_host_is_made(client, admin_auth, database, url):
    response = await subscribe(client, admin_auth, url)

    assert response.status_code == 201, response.text
    assert await subscriptions(database) == 1


@pytest.mark.parametrize("allowed_hosts", ["10.0.0.0/8"])
async def test_an_allowed_network_opens_only_itself(client, admin_auth, database):
    response = await subscribe(client, admin_auth, "http://127.0.0.1:9/hooks")

    assert response.status_code == 422, response.text


# --- when a delivery connects ------------------------------------------------------------------


def resolving(table: dict[str, list[str]]):
    """A resolver that answers from ``table``: the tests' own DNS."""

    async def resolve(host: str, _port: int) -> Sequence[str]:
        return table[host]

    return resolve


async def subscription_to(database, clock, url: str) -> None:
    """A subscription stored as an older Promos (or a name that resolved elsewhere) made it."""
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url=url, event_types=["*"], secret=SECRET, now=clock()
        )
        await events.emit(conn, "referral.signed_up", {"referred": "bob"}, now=clock())


async def attempt_errors(database) -> list[str | None]:
    async with database.begin() as conn:
        found = await events.list_deliveries(conn)
        return [delivery.last_error for delivery in found.items]


async def deliver(database, clock, destinations: Destinations) -> None:
    dispatcher = Dispatcher(
        database, clock=clock, callback_secret=BILLING_SECRET, destinations=destinations
    )
    try:
        assert await dispatcher.deliver_due() == 1
    finally:
        await dispatcher.close()


async def test_a_delivery_to_a_name_that_resolves_to_the_loopback_is_refused_at_send_time(
    database, clock, receiver
):
    await subscription_to(database, clock, f"http://localhost:{receiver.port}/hooks")

    await deliver(database, clock, Destinations())

    assert hooks_received(receiver) == []
    [error] = await attempt_errors(database)
    assert error is not None
    assert re.match(r"DestinationRefused: localhost \((127\.0\.0\.1|::1)\) is a loopback", error)


async def test_a_name_that_resolved_to_a_public_address_and_now_to_the_loopback_is_refused(
    client, admin_auth, database, clock, receiver
):
    # DNS rebinding: the name was public when the subscription was made...
    dns = {"hooks.example": [PUBLIC]}
    made_with = Destinations(resolve=resolving(dns))
    await made_with.check_url("http://hooks.example/")
    await subscription_to(database, clock, f"http://hooks.example:{receiver.port}/hooks")
    # ... and points at the loopback when the delivery connects.
    dns["hooks.example"] = ["127.0.0.1"]

    await deliver(database, clock, Destinations(resolve=resolving(dns)))

    assert hooks_received(receiver) == []
    [error] = await attempt_errors(database)
    assert error is not None
    assert "hooks.example (127.0.0.1) is a loopback address" in error


async def test_a_delivery_connects_to_the_address_that_was_checked(database, clock, receiver):
    # The allowed network, not the name, lets it through: the check and the connection use
    # one resolution, and the request still names its host.
    dns = {"hooks.example": ["127.0.0.1"]}
    await subscription_to(database, clock, f"http://hooks.example:{receiver.port}/hooks")

    await deliver(database, clock, Destinations.allowing("127.0.0.1", resolve=resolving(dns)))

    [request] = [r for r in receiver.requests if r.path == "/hooks"]
    assert request.headers["host"] == f"hooks.example:{receiver.port}"


async def test_a_name_that_resolves_to_public_and_private_addresses_is_refused(
    database, clock, receiver
):
    dns = {"hooks.example": [PUBLIC, "127.0.0.1"]}
    await subscription_to(database, clock, f"http://hooks.example:{receiver.port}/hooks")

    await deliver(database, clock, Destinations(resolve=resolving(dns)))

    assert hooks_received(receiver) == []


async def test_the_billing_callback_is_the_operators_own_and_may_go_to_the_loopback(
    database, clock, receiver
):
    await make_program(database, now=clock())
    await make_callback(database, url=f"{receiver.url}/billing/credit/bob", now=clock())

    await deliver(database, clock, Destinations())

    assert [r.path for r in receiver.requests if r.method == "POST"] == ["/billing/credit/bob"]


# --- the rules themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("::1", "a loopback"),
        ("0.0.0.0", "an unspecified"),  # noqa: S104 - an address under test, not bound
        ("::", "an unspecified"),
        ("169.254.169.254", "a link-local"),
        ("fe80::1", "a link-local"),
        ("10.0.0.1", "a private"),
        ("172.16.0.1", "a private"),
        ("192.168.0.1", "a private"),
        ("fd00::1", "a private"),
        ("100.64.0.1", "a non-public"),
        ("224.0.0.1", "a multicast"),
        ("::ffff:10.0.0.1", "a private"),
        ("64:ff9b::7f00:1", "a loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "a loopback"),  # 6to4 of 127.0.0.1
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_what_makes_an_address_non_public(address, kind):
    assert kind_of(ipaddress.ip_address(address)) == kind


def test_the_setting_takes_names_addresses_and_networks():
    names, networks = parse_allowed("Billing.Internal., 10.0.0.0/8 ::1,[fd00::1]")

    assert names == {"billing.internal"}
    assert [str(n) for n in networks] == ["10.0.0.0/8", "::1/128", "fd00::1/128"]


def test_a_malformed_setting_is_refused_at_start():
    with pytest.raises(ValueError, match="neither a host name, an IP address nor a network"):
        Settings(webhook_allowed_hosts="http://x")
