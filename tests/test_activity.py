"""The figures of the console's dashboard, as each domain's service counts them by UTC day.

Data is made through the services on the test clock; the clock moves between days.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import uuid4

from promos.codes import activity as codes_activity
from promos.codes.issue import issue_codes
from promos.codes.service import Batch, IssueRequest, expire_batch
from promos.daily import Days
from promos.db import Database
from promos.events import activity as events_activity
from promos.events.dispatcher import Outcome, RetryPolicy, claim, record
from promos.offers import activity as offers_activity
from promos.offers.player import claim_offer, see_offer
from promos.promocodes import activity as promocodes_activity
from promos.promocodes import service as promocodes
from promos.referrals import activity as referrals_activity
from promos.referrals import service as referrals
from promos.state import AppState
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, make_batch
from tests.factories.events import make_callback
from tests.factories.offers import make_game, make_offer
from tests.factories.promocodes import make_promocodes
from tests.factories.referrals import make_program, make_referral

TODAY = date(2026, 3, 1)  # the test clock's day
WEEK = Days(TODAY, 7)


async def issue(database: Database, batch: Batch, clock: FakeClock, customers: int) -> None:
    async with database.begin() as conn:
        requests = [IssueRequest(batch.id, CLIENT, f"customer-{uuid4()}") for _ in range(customers)]
        await issue_codes(conn, requests, [None] * customers, now=clock())


# the day-by-day counting itself


async def test_a_count_per_day_is_zero_on_days_without_any(database: Database) -> None:
    async with database.begin() as conn:
        daily = await codes_activity.issued_per_day(conn, days=WEEK)
    assert daily.counts == (0,) * 7
    assert daily.total() == 0


async def test_days_are_utc_days_ending_today_and_midnight_starts_a_new_one(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=10)
    clock.now = clock.now.replace(hour=23, minute=59, second=59)
    await issue(database, batch, clock, 2)
    clock.advance(seconds=1)  # midnight: 2 March
    await issue(database, batch, clock, 3)
    async with database.begin() as conn:
        daily = await codes_activity.issued_per_day(conn, days=Days(TODAY + timedelta(days=1), 3))
    assert daily.by_date() == [
        (date(2026, 2, 28), 0),
        (date(2026, 3, 1), 2),
        (date(2026, 3, 2), 3),
    ]
    assert (daily.total(1), daily.total(2), daily.total()) == (3, 5, 5)


async def test_what_happened_before_the_first_day_is_not_counted(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=10)
    await issue(database, batch, clock, 4)  # 1 March
    clock.advance(days=7)
    await issue(database, batch, clock, 1)  # 8 March
    async with database.begin() as conn:
        daily = await codes_activity.issued_per_day(conn, days=Days(TODAY + timedelta(days=7), 7))
    assert daily.counts == (0, 0, 0, 0, 0, 0, 1)


# codes


async def test_codes_issued_are_counted_per_day_across_every_batch(
    database: Database, clock: FakeClock
) -> None:
    first = await make_batch(database, now=clock(), codes=10)
    second = await make_batch(database, now=clock(), codes=10)
    clock.advance(days=-2)
    await issue(database, first, clock, 1)
    clock.advance(days=2)
    await issue(database, first, clock, 2)
    await issue(database, second, clock, 3)
    async with database.begin() as conn:
        daily = await codes_activity.issued_per_day(conn, days=WEEK)
    assert daily.counts == (0, 0, 0, 0, 1, 0, 5)


async def test_a_pool_below_the_threshold_is_running_low_with_the_days_left_at_todays_rate(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=20, name="Spring")
    await issue(database, batch, clock, 4)
    async with database.begin() as conn:
        [low] = await codes_activity.pools_running_low(conn, below=100, now=clock())
    assert (low.batch_id, low.name, low.left, low.issued_last_day) == (batch.id, "Spring", 16, 4)
    assert low.empty_in_days == 4


async def test_a_pool_at_or_above_the_threshold_is_not_running_low(
    database: Database, clock: FakeClock
) -> None:
    await make_batch(database, now=clock(), codes=10)
    async with database.begin() as conn:
        assert await codes_activity.pools_running_low(conn, below=10, now=clock()) == []
        assert len(await codes_activity.pools_running_low(conn, below=11, now=clock())) == 1


async def test_a_pool_running_low_without_issues_in_the_last_day_has_no_date_to_run_out(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=5)
    await issue(database, batch, clock, 1)
    clock.advance(hours=24, seconds=1)
    async with database.begin() as conn:
        [low] = await codes_activity.pools_running_low(conn, below=100, now=clock())
    assert (low.left, low.issued_last_day, low.empty_in_days) == (4, 0, None)


async def test_an_empty_pool_is_running_low_and_empty_now(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=2)
    await issue(database, batch, clock, 2)
    async with database.begin() as conn:
        [low] = await codes_activity.pools_running_low(conn, below=100, now=clock())
    assert (low.left, low.empty_in_days) == (0, 0)


async def test_pools_running_low_come_fewest_codes_left_first_and_expired_ones_not_at_all(
    database: Database, clock: FakeClock
) -> None:
    many = await make_batch(database, now=clock(), codes=8, name="Many")
    few = await make_batch(database, now=clock(), codes=3, name="Few")
    expired = await make_batch(database, now=clock(), codes=1, name="Gone")
    async with database.begin() as conn:
        await expire_batch(conn, expired.id)
        found = await codes_activity.pools_running_low(conn, below=100, now=clock())
    assert [(p.batch_id, p.left) for p in found] == [(few.id, 3), (many.id, 8)]


# promo codes


async def test_redemptions_are_counted_on_their_day_and_those_rolled_back_are_not(
    database: Database, clock: FakeClock
) -> None:
    generated = await make_promocodes(database, now=clock(), count=2, usage_count=5)
    first, second = generated.codes
    async with database.begin() as conn:
        clock.advance(days=-1)
        await promocodes.redeem(conn, code=first, customer=None, skus=None, now=clock())
        clock.advance(days=1)
        await promocodes.redeem(conn, code=first, customer=None, skus=None, now=clock())
        undone = await promocodes.redeem(conn, code=second, customer=None, skus=None, now=clock())
        await promocodes.rollback(conn, redemption_id=undone.id, now=clock())
        daily = await promocodes_activity.redemptions_per_day(conn, days=WEEK)
    assert daily.counts == (0, 0, 0, 0, 0, 1, 1)


# referrals


async def test_referral_sign_ups_are_counted_on_the_day_of_the_referral(
    database: Database, clock: FakeClock
) -> None:
    await make_program(database, now=clock())
    clock.advance(days=-3)
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    clock.advance(days=3)
    await make_referral(database, now=clock(), referrer="alice", referred="carol")
    await make_referral(database, now=clock(), referrer="dave", referred="erin")
    async with database.begin() as conn:
        daily = await referrals_activity.signups_per_day(conn, days=WEEK)
    assert daily.counts == (0, 0, 0, 1, 0, 0, 2)


async def test_referral_rewards_are_counted_on_the_day_the_target_was_reached(
    database: Database, clock: FakeClock
) -> None:
    await make_program(database, now=clock(), target_value=Decimal("100.00"))
    clock.advance(days=-2)
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    await make_referral(database, now=clock(), referrer="alice", referred="carol")
    async with database.begin() as conn:
        await referrals.record_payment(
            conn, user_hash="bob", total_amount_paid=Decimal("50.00"), now=clock()
        )
        clock.advance(days=2)
        await referrals.record_payment(
            conn, user_hash="bob", total_amount_paid=Decimal("100.00"), now=clock()
        )
        daily = await referrals_activity.rewards_per_day(conn, days=WEEK)
    assert daily.counts == (0, 0, 0, 0, 0, 0, 1)


# offers


async def test_offer_claims_and_impressions_are_counted_per_day_in_every_game(
    database: Database, state: AppState, clock: FakeClock
) -> None:
    for game_id in ("galaxy", "farm"):
        await make_game(database, now=clock(), game_id=game_id)
    galaxy = await make_offer(database, now=clock(), catalog=state.offers, gameId="galaxy")
    farm = await make_offer(database, now=clock(), catalog=state.offers, gameId="farm")
    parts = {"database": database, "catalog": state.offers, "counter": state.offer_counter}
    for offer, player in ((galaxy, "p1"), (farm, "p2"), (farm, "p3")):
        await claim_offer(
            **parts,
            game_id=offer.game_id,
            player_id=player,
            offer_id=offer.id,
            product_id=None,
            transaction_id=f"tx-{player}",
            purchased_at=int(clock().timestamp()),
            now=clock(),
        )
        await see_offer(
            **parts,
            game_id=offer.game_id,
            player_id=player,
            offer_id=offer.id,
            impression_id=uuid4(),
            now=clock() - timedelta(days=1),
        )
    # A replayed claim is the same claim.
    await claim_offer(
        **parts,
        game_id="galaxy",
        player_id="p1",
        offer_id=galaxy.id,
        product_id=None,
        transaction_id="tx-p1",
        purchased_at=int(clock().timestamp()),
        now=clock(),
    )
    async with database.begin() as conn:
        claims = await offers_activity.claims_per_day(conn, days=WEEK)
        impressions = await offers_activity.impressions_per_day(conn, days=WEEK)
    assert claims.counts == (0, 0, 0, 0, 0, 0, 3)
    assert impressions.counts == (0, 0, 0, 0, 0, 3, 0)


# webhooks


async def fail_once(database: Database, clock: FakeClock, status_code: int | None) -> None:
    """The dispatcher's next attempt of every due delivery ends with ``status_code``."""
    async with database.begin() as conn:
        for delivery in await claim(conn, now=clock(), lease=timedelta(minutes=1), limit=10):
            outcome = Outcome(status_code, None if status_code else "refused", 5)
            await record(conn, delivery, outcome, now=clock(), policy=RetryPolicy())


async def test_a_delivery_failing_several_times_a_day_counts_once_that_day(
    database: Database, clock: FakeClock
) -> None:
    clock.advance(days=-1)  # a first failure yesterday ...
    await make_callback(database, url="http://127.0.0.1:9/credit", now=clock())
    await fail_once(database, clock, 500)
    clock.advance(days=1)  # ... then twice today: no answer, then a 404
    await fail_once(database, clock, None)
    clock.advance(minutes=5)
    await fail_once(database, clock, 404)
    async with database.begin() as conn:
        daily = await events_activity.failing_deliveries_per_day(conn, days=WEEK)
    assert daily.counts == (0, 0, 0, 0, 0, 1, 1)


async def test_a_delivered_attempt_is_not_a_failing_delivery(
    database: Database, clock: FakeClock
) -> None:
    await make_callback(database, url="http://127.0.0.1:9/credit", now=clock())
    await fail_once(database, clock, 204)
    async with database.begin() as conn:
        daily = await events_activity.failing_deliveries_per_day(conn, days=WEEK)
    assert daily.total() == 0
