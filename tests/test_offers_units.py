"""Go durations, filter matching and the words of each rule that leaves an offer out, case by
case (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from promos.offers.durations import InvalidDuration, parse_duration
from promos.offers.filters import FilterIndex, matches, parse_filters
from promos.offers.rules import explain_offers
from promos.offers.service import NO_HISTORY, Game, Offer, PlayerOffer, make_spec


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("300ms", 300_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        ("1h0m0.5s", 3_600_500_000_000),
        ("1.5us", 1_500),
        ("2µs", 2_000),
        ("7ns", 7),
        ("0", 0),
        ("+5s", 5_000_000_000),
        (".5s", 500_000_000),
    ],
)
def test_go_durations(text, nanoseconds):
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "5", "1d", "h", "1h 2m", "--1s", "1.2.3s", "ms", "1e3s"])
def test_invalid_go_durations(text):
    with pytest.raises(InvalidDuration):
        parse_duration(text)


FILTERS = {
    "eq": {"country": {"eq": "BR"}},
    "neq": {"country": {"neq": "US"}},
    "interval": {"level": {"geq": 1, "lt": 5}},
    "none": {},
}


@pytest.mark.parametrize("inefficient", [False, True])
@pytest.mark.parametrize(
    "attributes",
    [{}, {"country": "BR"}, {"country": "US"}, {"level": "3"}, {"level": "x"}, {"other": "1"}],
)
def test_the_index_agrees_with_matching_one_offer_at_a_time(attributes, inefficient):
    parsed = [parse_filters(f) for f in FILTERS.values()]
    index = FilterIndex(enumerate(parsed))

    expected = {n for n, f in enumerate(parsed) if matches(f, attributes, inefficient=inefficient)}

    assert set(index.select(attributes, inefficient=inefficient)) == expected


# --- why not: each rule's words (promos.offers.rules) ----------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _reason(
    *,
    filters: dict[str, Any] | None = None,
    attributes: dict[str, str] | None = None,
    inefficient: bool = True,
    frequency: tuple[str, int] = ("", 5),
    history: PlayerOffer = NO_HISTORY,
) -> str | None:
    spec = make_spec(
        name="Gems", product_id="gems", cost=None, contents={"gems": 5}, metadata=None,
        placement="store", period=("", 5), frequency=frequency, trigger=(0, 2**40),
        filters=filters,
    )  # fmt: skip
    offer = Offer(
        id=uuid4(), key=uuid4(), game_id="galaxy", version=1, enabled=True, spec=spec,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    game = Game("galaxy", "Galaxy", {"allowInefficientQueries": inefficient})
    [verdict] = explain_offers(
        game=game,
        offers=[offer],
        histories={offer.id: history},
        player_id="p1",
        attributes=attributes or {},
        now=NOW,
    ).verdicts
    return verdict.reason


@pytest.mark.parametrize(
    ("filters", "attributes", "inefficient", "reason"),
    [
        ({"level": {"geq": 1}}, {"level": "x"}, True, "filter: level 'x' is not a number"),
        (
            {"level": {"geq": 1}},
            {"level": "3"},
            False,
            (
                "filter: level has an interval, which the game matches only with "
                "allowInefficientQueries"
            ),
        ),
        (
            {"country": {"neq": "US"}},
            {"country": "US"},
            True,
            ("filter: country is 'US', which the offer excludes"),
        ),
        ({"level": {"lt": 10}}, {"level": "12"}, True, "filter: level 12 is not below 10"),
        ({"level": {"geq": 1}}, {"level": "3", "x": "1"}, True, None),
    ],
)
def test_each_way_a_filter_refuses_has_its_words(filters, attributes, inefficient, reason):
    assert _reason(filters=filters, attributes=attributes, inefficient=inefficient) == reason


def test_a_wait_between_impressions_says_when_the_offer_comes_back():
    seen = PlayerOffer(impression_count=1, last_impression_at=NOW - timedelta(minutes=30))

    assert _reason(frequency=("1h", 0), history=seen) == (
        "frequency: seen at 2026-03-01 11:30:00 UTC, once per 1h; "
        "again from 2026-03-01 12:30:00 UTC"
    )
