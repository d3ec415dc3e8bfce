"""Go durations and filter matching, case by case (no database)."""

from __future__ import annotations

import pytest

from promos.offers.durations import InvalidDuration, parse_duration
from promos.offers.filters import FilterIndex, matches, parse_filters


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
