"""Pool code holds through the native API: a code of a batch held for an order for a while,
then confirmed (issued to the customer under the hold's id), released, or let lapse; the
code of an ended hold goes back to the pool or is burnt, as its batch says.

Expiry is driven by the injected clock; the races run on PostgreSQL only, with real
concurrency.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from promos.codes import counts, holds
from promos.codes.service import Batch, Rules
from promos.codes.tables import codes, pool_code_holds
from promos.db import Database
from promos.events import service as events
from promos.events.tables import outbox
from promos.settings import Settings
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, make_batch

HOLDS = "/v1/pool-code-holds"
OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")


def take(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    batch: Batch,
    order: str = "order-1",
    *,
    customer: str = "customer-1",
    key: str | None = None,
    ttl_seconds: int = 600,
    client_id: UUID = CLIENT,
) -> Any:
    """One hold request (a coroutine, to be awaited or gathered)."""
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    body = {
        "client_id": str(client_id),
        "customer_id": customer,
        "order": order,
        "ttl_seconds": ttl_seconds,
    }
    return client.post(f"/v1/batches/{batch.id}/holds", json=body, headers=headers)


def issue(
    client: httpx.AsyncClient, auth: dict[str, str], batch: Batch, customer: str = "customer-1"
) -> Any:
    body = {"client_id": str(CLIENT), "customer_id": customer}
    return client.post(f"/v1/batches/{batch.id}/issues", json=body, headers=auth)


async def set_released_codes(
    client: httpx.AsyncClient, auth: dict[str, str], batch: Batch, value: str
) -> None:
    response = await client.put(
        f"/v1/batches/{batch.id}/hold-settings", json={"released_codes": value}, headers=auth
    )
    assert response.status_code == 200, response.text


async def free_codes(database: Database, batch: Batch) -> list[str]:
    async with database.begin() as conn:
        rows = await conn.execute(
            select(codes.c.code)
            .where(codes.c.batch_id == batch.id, codes.c.issued_at.is_(None))
            .order_by(codes.c.seq)
        )
        return list(rows.scalars())


async def code_owner(database: Database, code: str) -> tuple[str | None, bool]:
    """The code's customer, and whether it is out of the pool."""
    async with database.begin() as conn:
        row = (
            await conn.execute(
                select(codes.c.customer_id, codes.c.issued_at).where(codes.c.code == code)
            )
        ).one()
        return row.customer_id, row.issued_at is not None


async def hold_statuses(database: Database) -> Counter[str]:
    async with database.begin() as conn:
        return Counter((await conn.execute(select(pool_code_holds.c.status))).scalars())


async def subscribe_all(database: Database, clock: FakeClock) -> None:
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url="https://hooks.example.com/promos", event_types=["*"], secret="s", now=clock()
        )


async def event_data(database: Database, event_type: str) -> list[dict[str, Any]]:
    async with database.begin() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.event_type == event_type).order_by(outbox.c.id)
        )
        return list(rows.scalars())


async def ended_hold(
    client: httpx.AsyncClient, auth: dict[str, str], batch: Batch, clock: FakeClock, state: Any
) -> dict[str, Any]:
    """A hold of the batch that lapsed and that the sweep ended (its code as the batch says)."""
    held: dict[str, Any] = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=60)
    assert await state.hold_sweeper.sweep() == 1
    return held


# holding


async def test_a_hold_takes_the_next_free_code_out_of_the_pool(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3, prefix="H")

    response = await take(client, auth, batch)

    assert response.status_code == 201, response.text
    held = response.json()
    assert (held["code"], held["status"], held["order"]) == ("H-0", "held", "order-1")
    assert held["expires_at"] == "2026-03-01T12:10:00Z"
    assert held["returned"] is None
    assert await free_codes(database, batch) == ["H-1", "H-2"]


async def test_an_issue_never_hands_out_a_held_code(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2, prefix="H")
    await take(client, auth, batch)

    issued = (await issue(client, auth, batch, "customer-2")).json()

    assert issued["code"] == "H-1"
    assert (await issue(client, auth, batch, "customer-3")).status_code == 409


async def test_a_hold_lasts_at_most_the_configured_longest(client, database, clock, auth, state):
    batch = await make_batch(database, now=clock())
    state.settings.pool_hold_max_seconds = 120

    held = (await take(client, auth, batch, ttl_seconds=3600)).json()

    assert held["expires_at"] == "2026-03-01T12:02:00Z"


async def test_the_same_order_asking_again_gets_the_same_hold(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    first = (await take(client, auth, batch)).json()

    again = await take(client, auth, batch)

    assert again.status_code == 201
    assert again.json() == first
    assert len(await free_codes(database, batch)) == 2


async def test_the_same_idempotency_key_gets_the_same_hold(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    first = (await take(client, auth, batch, key="k-1")).json()
    await client.post(f"{HOLDS}/{first['id']}/release", headers=auth)

    again = await take(client, auth, batch, key="k-1")

    assert again.json()["id"] == first["id"]
    assert again.json()["status"] == "released"


async def test_an_idempotency_key_for_another_order_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    await take(client, auth, batch, "order-1", key="k-1")

    response = await take(client, auth, batch, "order-2", key="k-1")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_an_order_held_for_another_customer_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    await take(client, auth, batch, customer="customer-1")

    response = await take(client, auth, batch, customer="customer-2")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_held_for_another_customer"


async def test_a_hold_from_an_empty_pool_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await take(client, auth, batch, "order-1")

    response = await take(client, auth, batch, "order-2")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "pool_exhausted"


async def test_a_hold_of_an_unknown_batch_is_not_found(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    unknown = Batch(UUID(int=7), batch.client_id, "x", batch.rules, batch.expired, batch.created_at)

    response = await take(client, auth, unknown)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "batch_not_found"


async def test_a_hold_for_a_client_not_of_the_batch_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock())

    response = await take(client, auth, batch, client_id=OTHER_CLIENT)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "client_mismatch"


async def test_a_hold_of_an_expired_batch_is_gone(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    response = await take(client, auth, batch)

    assert response.status_code == 410


# the per-customer rule


async def test_held_codes_count_for_the_per_customer_rule_of_issues(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), rules=Rules(max_per_customer=1))
    await take(client, auth, batch, customer="customer-1")

    response = await issue(client, auth, batch, "customer-1")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "customer_limit_reached"


async def test_issued_codes_count_for_the_per_customer_rule_of_holds(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), rules=Rules(max_per_customer=1))
    await issue(client, auth, batch, "customer-1")

    response = await take(client, auth, batch, customer="customer-1")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "customer_limit_reached"


async def test_a_released_hold_no_longer_counts_for_the_rule(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), rules=Rules(max_per_customer=1))
    held = (await take(client, auth, batch, "order-1")).json()
    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    response = await issue(client, auth, batch, "customer-1")

    assert response.status_code == 201


async def test_a_customer_s_lapsed_hold_no_longer_counts_for_their_next_hold(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), rules=Rules(max_per_customer=1))
    await take(client, auth, batch, "order-1", ttl_seconds=60)
    clock.advance(seconds=60)

    response = await take(client, auth, batch, "order-2")

    assert response.status_code == 201
    assert await hold_statuses(database) == {"expired": 1, "held": 1}


async def test_an_issue_takes_the_returned_code_of_a_lapsed_hold_no_sweep_has_ended(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1, prefix="X")
    await set_released_codes(client, auth, batch, "return")
    held = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    response = await issue(client, auth, batch, "customer-2")

    assert response.status_code == 201, response.text
    assert response.json()["code"] == "X-0"
    ended = (await client.get(f"{HOLDS}/{held['id']}", headers=auth)).json()
    assert (ended["status"], ended["returned"]) == ("expired", True)
    assert await code_owner(database, "X-0") == ("customer-2", True)


async def test_an_issue_never_hands_out_the_burnt_code_of_a_lapsed_hold(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1, prefix="X")
    await take(client, auth, batch, ttl_seconds=60)
    clock.advance(seconds=60)

    response = await issue(client, auth, batch, "customer-2")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "pool_exhausted"
    assert await code_owner(database, "X-0") == (None, True)
    assert await hold_statuses(database) == {"expired": 1}


async def test_a_customer_s_lapsed_hold_no_longer_counts_for_their_next_issue(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=2, rules=Rules(max_per_customer=1))
    await take(client, auth, batch, "order-1", ttl_seconds=60)
    clock.advance(seconds=60)

    response = await issue(client, auth, batch)

    assert response.status_code == 201, response.text
    assert await hold_statuses(database) == {"expired": 1}


async def test_a_hold_takes_the_returned_code_of_a_lapsed_hold_no_sweep_has_ended(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1, prefix="X")
    await set_released_codes(client, auth, batch, "return")
    await take(client, auth, batch, "order-1", ttl_seconds=60)
    clock.advance(seconds=60)

    response = await take(client, auth, batch, "order-2", customer="customer-2")

    assert response.status_code == 201, response.text
    assert response.json()["code"] == "X-0"
    assert await hold_statuses(database) == {"expired": 1, "held": 1}


async def test_a_hold_from_a_pool_of_burnt_lapsed_codes_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await take(client, auth, batch, "order-1", ttl_seconds=60)
    clock.advance(seconds=60)

    response = await take(client, auth, batch, "order-2", customer="customer-2")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "pool_exhausted"
    assert await hold_statuses(database) == {"expired": 1}


async def test_an_issue_leaves_a_live_hold_alone(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await set_released_codes(client, auth, batch, "return")
    await take(client, auth, batch, ttl_seconds=60)
    clock.advance(seconds=59)

    response = await issue(client, auth, batch, "customer-2")

    assert response.status_code == 409
    assert await hold_statuses(database) == {"held": 1}


# confirming


async def test_a_confirmed_hold_issues_its_code_to_the_customer(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2, prefix="H")
    held = (await take(client, auth, batch)).json()
    clock.advance(seconds=30)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["id"], done["status"], done["code"]) == (held["id"], "confirmed", "H-0")
    assert done["ended_at"] == "2026-03-01T12:00:30Z"
    assert await code_owner(database, "H-0") == ("customer-1", True)
    codes_of = await client.get("/v1/customers/customer-1/codes", headers=auth)
    assert [c["code"] for c in codes_of.json()["items"]] == ["H-0"]


async def test_a_confirm_again_answers_the_same_hold(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    held = (await take(client, auth, batch)).json()
    first = (await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)).json()
    clock.advance(seconds=3600)

    again = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert again.status_code == 200
    assert again.json() == first


async def test_a_lapsed_hold_cannot_be_confirmed(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    held = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "hold_expired"


async def test_a_late_confirm_of_a_hold_not_yet_ended_issues_its_code_when_allowed(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=1, prefix="L")
    held = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=90)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "confirmed"
    assert response.json()["code"] == "L-0"
    assert await code_owner(database, "L-0") == ("customer-1", True)


async def test_a_late_confirm_takes_back_a_returned_code_nobody_took(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=1, prefix="L")
    await set_released_codes(client, auth, batch, "return")
    held = await ended_hold(client, auth, batch, clock, state)
    assert await free_codes(database, batch) == ["L-0"]

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)
    again = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    if await state.database.detect_engine():  # docs/deployment.md: not taken back on Citus
        assert response.status_code == again.status_code == 410
        assert "on Citus" in response.json()["error"]["message"]
        assert await free_codes(database, batch) == ["L-0"]
        return
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "confirmed"
    assert response.json()["returned"] is None
    assert again.json() == response.json()
    assert await free_codes(database, batch) == []
    assert await code_owner(database, "L-0") == ("customer-1", True)


async def test_a_late_confirm_is_refused_once_the_code_was_issued_to_another(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=1, prefix="L")
    await set_released_codes(client, auth, batch, "return")
    held = await ended_hold(client, auth, batch, clock, state)
    assert (await issue(client, auth, batch, "customer-2")).status_code == 201

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    on_citus = await state.database.detect_engine()
    assert ("on Citus" if on_citus else "no longer free") in response.json()["error"]["message"]
    assert await code_owner(database, "L-0") == ("customer-2", True)


async def test_a_late_confirm_is_refused_for_a_burnt_code(client, database, clock, auth, state):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=1, prefix="L")
    held = await ended_hold(client, auth, batch, clock, state)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    assert "burnt" in response.json()["error"]["message"]
    assert await code_owner(database, "L-0") == (None, True)


async def test_a_late_confirm_taking_a_code_back_keeps_the_per_customer_rule(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=3, rules=Rules(max_per_customer=1))
    await set_released_codes(client, auth, batch, "return")
    held = await ended_hold(client, auth, batch, clock, state)
    assert (await issue(client, auth, batch)).status_code == 201  # the customer's one code

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    assert (await client.get(f"{HOLDS}/{held['id']}", headers=auth)).json()["status"] == "expired"


async def test_a_released_hold_cannot_be_confirmed(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    held = (await take(client, auth, batch)).json()
    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "hold_released"


async def test_a_confirmed_hold_cannot_be_released(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    held = (await take(client, auth, batch)).json()
    await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "hold_confirmed"


# releasing and expiry: the code returned or burnt


async def test_a_released_code_is_burnt_by_default(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2, prefix="H")
    held = (await take(client, auth, batch)).json()

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["returned"]) == ("released", False)
    assert await code_owner(database, "H-0") == (None, True)
    assert await free_codes(database, batch) == ["H-1"]


async def test_a_released_code_goes_back_to_the_pool_when_the_batch_says(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=2, prefix="H")
    await set_released_codes(client, auth, batch, "return")
    held = (await take(client, auth, batch)).json()

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.json()["returned"] is True
    assert await free_codes(database, batch) == ["H-0", "H-1"]


async def test_a_returned_code_is_issued_again(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1, prefix="H")
    await set_released_codes(client, auth, batch, "return")
    held = (await take(client, auth, batch)).json()
    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    response = await issue(client, auth, batch, "customer-2")

    assert response.status_code == 201
    assert response.json()["code"] == "H-0"


async def test_a_returned_code_is_not_counted_as_issued(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    await set_released_codes(client, auth, batch, "return")
    held = (await take(client, auth, batch, ttl_seconds=3600)).json()
    clock.advance(seconds=600)
    async with database.begin() as conn:
        counted = await counts.counts(conn, batch.id, now=clock())  # its checkpoint counts it

    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    async with database.begin() as conn:
        found = await counts.counts(conn, batch.id, now=clock())
    assert counted.issued == 1
    assert (found.issued, found.left) == (0, 3)


async def test_a_lapsed_hold_reads_as_expired_before_anything_ends_it(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock())
    held = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    response = await client.get(f"{HOLDS}/{held['id']}", headers=auth)

    assert response.json()["status"] == "expired"
    assert response.json()["ended_at"] is None


async def test_releasing_a_lapsed_hold_ends_it_as_expired(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1, prefix="H")
    await set_released_codes(client, auth, batch, "return")
    held = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=90)

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    done = response.json()
    assert (done["status"], done["returned"]) == ("expired", True)
    assert done["ended_at"] == "2026-03-01T12:01:30Z"
    assert await free_codes(database, batch) == ["H-0"]


async def test_the_order_asking_again_after_its_hold_lapsed_gets_a_new_hold(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=2, prefix="H")
    first = (await take(client, auth, batch, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    again = (await take(client, auth, batch)).json()

    assert again["id"] != first["id"]
    assert again["code"] == "H-1"  # H-0 was burnt: the customer has seen it
    assert await hold_statuses(database) == {"expired": 1, "held": 1}


async def test_ending_lapsed_holds_returns_their_codes_once(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3, prefix="H")
    await set_released_codes(client, auth, batch, "return")
    for n in range(2):
        await take(client, auth, batch, f"order-{n}", ttl_seconds=60)
    await take(client, auth, batch, "order-9", ttl_seconds=600)
    clock.advance(seconds=60)

    async with database.begin() as conn:
        ended = await holds.end_lapsed(conn, now=clock())
    async with database.begin() as conn:
        again = await holds.end_lapsed(conn, now=clock())

    assert (ended, again) == (2, 0)
    assert await free_codes(database, batch) == ["H-0", "H-1"]


# the batch's setting, the live holds


async def test_a_batch_burns_released_codes_until_told_otherwise(client, database, clock, auth):
    batch = await make_batch(database, now=clock())

    before = (await client.get(f"/v1/batches/{batch.id}/hold-settings", headers=auth)).json()
    await set_released_codes(client, auth, batch, "return")
    after = (await client.get(f"/v1/batches/{batch.id}/hold-settings", headers=auth)).json()

    assert before == {"batch_id": str(batch.id), "released_codes": "burn"}
    assert after == {"batch_id": str(batch.id), "released_codes": "return"}


async def test_a_batch_lists_its_live_holds_soonest_to_expire_first(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=4)
    await take(client, auth, batch, "order-1", ttl_seconds=600)
    await take(client, auth, batch, "order-2", ttl_seconds=60)
    released = (await take(client, auth, batch, "order-3")).json()
    await client.post(f"{HOLDS}/{released['id']}/release", headers=auth)

    response = await client.get(f"/v1/batches/{batch.id}/holds", headers=auth)

    assert [h["order"] for h in response.json()["items"]] == ["order-2", "order-1"]


# events


async def test_holds_send_their_events(client, database, clock, auth):
    await subscribe_all(database, clock)
    batch = await make_batch(database, now=clock(), codes=3, prefix="H")
    confirmed = (await take(client, auth, batch, "order-1")).json()
    released = (await take(client, auth, batch, "order-2")).json()
    await take(client, auth, batch, "order-3", ttl_seconds=60)
    await client.post(f"{HOLDS}/{confirmed['id']}/confirm", headers=auth)
    await client.post(f"{HOLDS}/{released['id']}/release", headers=auth)
    clock.advance(seconds=60)
    async with database.begin() as conn:
        await holds.end_lapsed(conn, now=clock())

    held = await event_data(database, "pool_code.held")
    assert [e["order"] for e in held] == ["order-1", "order-2", "order-3"]
    assert held[0]["code"] == "H-0"
    assert held[0]["batch_id"] == str(batch.id)
    [done] = await event_data(database, "pool_code.hold_confirmed")
    assert (done["hold_id"], done["confirmed_at"]) == (confirmed["id"], "2026-03-01T12:00:00+00:00")
    [gone] = await event_data(database, "pool_code.hold_released")
    assert (gone["hold_id"], gone["returned"]) == (released["id"], False)
    [lapsed] = await event_data(database, "pool_code.hold_expired")
    assert (lapsed["order"], lapsed["ended_at"]) == ("order-3", "2026-03-01T12:01:00+00:00")


# races, on PostgreSQL


@pytest.fixture
async def warm_pool(settings: Settings, database: Database) -> None:
    """Open the app's pooled connections up front, all at once, so that the requests race."""
    everyone_connected = asyncio.Barrier(settings.db_pool_size)

    async def hold_one() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone_connected.wait()

    await asyncio.wait_for(
        asyncio.gather(*(hold_one() for _ in range(settings.db_pool_size))), timeout=10
    )


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_holds_racing_for_a_few_codes_never_hold_one_twice(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)

    responses = await asyncio.gather(
        *(take(client, auth, batch, f"order-{n}", customer=f"c{n}") for n in range(60))
    )

    assert Counter(r.status_code for r in responses) == {201: 5, 409: 55}
    held = [r.json()["code"] for r in responses if r.status_code == 201]
    assert len(set(held)) == 5
    assert await free_codes(database, batch) == []


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_holds_and_issues_racing_never_share_a_code(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=10)

    responses = await asyncio.gather(
        *(take(client, auth, batch, f"order-{n}", customer=f"h{n}") for n in range(20)),
        *(issue(client, auth, batch, f"i{n}") for n in range(20)),
    )

    taken = [r.json()["code"] for r in responses if r.status_code == 201]
    assert len(taken) == 10
    assert len(set(taken)) == 10


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_one_customer_racing_holds_and_issues_gets_no_more_than_the_rule(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=20, rules=Rules(max_per_customer=2))

    responses = await asyncio.gather(
        *(take(client, auth, batch, f"order-{n}", customer="c") for n in range(15)),
        *(issue(client, auth, batch, "c") for _ in range(15)),
    )

    assert Counter(r.status_code for r in responses) == {201: 2, 403: 28}


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_the_same_order_racing_itself_gets_one_hold(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=10)

    responses = await asyncio.gather(*(take(client, auth, batch, "order-1") for _ in range(20)))

    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await free_codes(database, batch)) == 9


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_a_confirm_racing_the_expiry_of_its_hold_one_wins(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=30)
    await set_released_codes(client, auth, batch, "return")
    held = [
        (await take(client, auth, batch, f"order-{n}", ttl_seconds=60)).json() for n in range(20)
    ]
    clock.advance(seconds=59)
    lapsing = clock() + timedelta(seconds=1)

    async def sweep() -> int:
        async with database.begin() as conn:
            return await holds.end_lapsed(conn, now=lapsing, limit=1)

    confirms = asyncio.gather(
        *(client.post(f"{HOLDS}/{h['id']}/confirm", headers=auth) for h in held)
    )
    sweeps = asyncio.gather(*(sweep() for _ in range(20)))
    confirmed, swept = await asyncio.gather(confirms, sweeps)

    won_by_confirm = sum(r.status_code == 200 for r in confirmed)
    assert won_by_confirm + sum(swept) == 20
    statuses = await hold_statuses(database)
    assert statuses == Counter(confirmed=won_by_confirm, expired=sum(swept))
    assert len(await free_codes(database, batch)) == 10 + sum(swept)


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_late_confirms_racing_issues_for_returned_codes_never_share_one(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    batch = await make_batch(database, now=clock(), codes=10)
    await set_released_codes(client, auth, batch, "return")
    held = [
        (await take(client, auth, batch, f"order-{n}", ttl_seconds=60)).json() for n in range(10)
    ]
    clock.advance(seconds=60)
    assert await state.hold_sweeper.sweep() == 10

    confirms = asyncio.gather(
        *(client.post(f"{HOLDS}/{h['id']}/confirm", headers=auth) for h in held)
    )
    issues = asyncio.gather(*(issue(client, auth, batch, f"other-{n}") for n in range(10)))
    confirmed, issued = await asyncio.gather(confirms, issues)

    won = [r.json()["code"] for r in confirmed if r.status_code == 200]
    handed = [r.json()["code"] for r in issued if r.status_code == 201]
    assert {r.status_code for r in confirmed} <= {200, 410}
    assert len(won) + len(handed) == 10
    assert len(set(won) | set(handed)) == 10
    assert await free_codes(database, batch) == []


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
@pytest.mark.parametrize("sweeps_racing", [0, 3], ids=["alone", "with_sweeps"])
async def test_issues_under_load_as_holds_lapse_never_issue_a_code_twice(
    client, clock, auth, state, sweeps_racing
):
    database = state.database
    batch = await make_batch(database, now=clock(), codes=30)
    await set_released_codes(client, auth, batch, "return")
    for n in range(20):
        await take(client, auth, batch, f"order-{n}", ttl_seconds=60)
    clock.advance(seconds=60)

    async def sweeps() -> int:
        return sum([await state.hold_sweeper.sweep() for _ in range(sweeps_racing)])

    issues = asyncio.gather(*(issue(client, auth, batch, f"c-{n}") for n in range(45)))
    responses, swept = await asyncio.gather(issues, sweeps())

    handed = {r.json()["code"]: r.json()["customer_id"] for r in responses if r.status_code == 201}
    assert len(handed) == 30  # the 10 free codes, and the 20 of the lapsed holds
    assert sorted(r.status_code for r in responses) == [201] * 30 + [409] * 15
    async with database.begin() as conn:
        owners = await conn.execute(
            select(codes.c.code, codes.c.customer_id).where(codes.c.batch_id == batch.id)
        )
        assert dict(owners.all()) == handed
    assert await hold_statuses(database) == {"expired": 20}
    if not sweeps_racing:
        assert swept == 0  # the issues ended the lapsed holds themselves


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_holds_and_issues_under_load_as_holds_lapse_never_share_a_code(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=20)
    await set_released_codes(client, auth, batch, "return")
    for n in range(20):
        await take(client, auth, batch, f"order-{n}", ttl_seconds=60)
    clock.advance(seconds=60)

    holding = asyncio.gather(
        *(take(client, auth, batch, f"new-{n}", customer=f"h-{n}") for n in range(20))
    )
    issuing = asyncio.gather(*(issue(client, auth, batch, f"i-{n}") for n in range(20)))
    held, issued = await asyncio.gather(holding, issuing)

    codes_out = [r.json()["code"] for r in [*held, *issued] if r.status_code == 201]
    assert {r.status_code for r in [*held, *issued]} <= {201, 409}
    assert len(codes_out) == 20  # every code of the 20 lapsed holds, once
    assert len(set(codes_out)) == 20
    assert await free_codes(database, batch) == []


async def test_the_sweep_ends_every_lapsed_hold_of_every_batch(
    client, database, clock, auth, state
):
    first = await make_batch(database, now=clock(), codes=2, prefix="A")
    second = await make_batch(database, now=clock(), codes=2, prefix="B")
    await set_released_codes(client, auth, first, "return")
    await take(client, auth, first, "order-1", ttl_seconds=60)
    await take(client, auth, second, "order-2", ttl_seconds=60)
    await take(client, auth, second, "order-3", ttl_seconds=600)
    clock.advance(seconds=60)

    ended = await state.hold_sweeper.sweep()

    assert ended == 2
    assert await free_codes(database, first) == ["A-0", "A-1"]
    assert await free_codes(database, second) == []  # B-0 burnt, B-1 still held
    assert await hold_statuses(database) == {"expired": 2, "held": 1}
