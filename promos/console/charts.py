"""Per-day bar charts drawn on the server as SVG: no script, nothing but the page itself.

``bar_chart`` works out the geometry; the template ``_chart.html`` writes it out, with a title
and a description for screen readers and the day-by-day figures as a table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from promos.daily import Daily

WIDTH = 300
HEIGHT = 80
GAP = 2  # between bars, in viewBox units
BASELINE = 1  # a bar of 0 still shows as a line, so that a day without any is visibly one


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str  # e.g. "2026-03-01"
    count: str  # e.g. "1,200"


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    highest: int
    description: str


def bar_chart(daily: Daily, *, what: str) -> Chart:
    """One bar per day, the highest day's bar the chart's full height."""
    days = daily.by_date()
    highest = max(daily.counts, default=0)
    step = WIDTH / max(len(days), 1)
    bars = []
    for n, (day, count) in enumerate(days):
        height = BASELINE + (HEIGHT - BASELINE) * count / highest if highest else BASELINE
        bars.append(
            Bar(
                x=round(n * step + GAP / 2, 2),
                y=round(HEIGHT - height, 2),
                width=round(step - GAP, 2),
                height=round(height, 2),
                day=day.isoformat(),
                count=f"{count:,}",
            )
        )
    return Chart(WIDTH, HEIGHT, tuple(bars), highest, _describe(daily, what))


def _describe(daily: Daily, what: str) -> str:
    days = daily.by_date()
    if not days:
        return f"No {what}."
    first, last = days[0][0].isoformat(), days[-1][0].isoformat()
    total = daily.total()
    if total == 0:
        return f"No {what} from {first} to {last}."
    busiest_day, busiest = max(reversed(days), key=lambda d: d[1])
    return (
        f"{total:,} {what} from {first} to {last}; the most on {busiest_day.isoformat()} "
        f"({busiest:,}); {daily.total(1):,} today."
    )
