"""Charts drawn on the server as SVG: numbers in, shapes out, no script in the browser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 600
HEIGHT = 160
# Room at the bottom for the first and last day's labels.
LABELS = 20


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """A bar per day, scaled to the highest; what the template's ``<svg>`` draws."""

    bars: tuple[Bar, ...]
    width: int
    height: int
    plot_height: int
    highest: int
    first: str
    last: str
    total: int


def day_bars(days: Sequence[tuple[date, int]]) -> BarChart:
    """A bar for each ``(day, count)``, oldest first."""
    plot = HEIGHT - LABELS
    highest = max((n for _, n in days), default=0)
    slot = WIDTH / max(len(days), 1)
    gap = min(2.0, slot / 4)
    bars = []
    for i, (day, count) in enumerate(days):
        height = plot * count / highest if highest else 0.0
        bars.append(
            Bar(
                x=round(i * slot + gap / 2, 2),
                y=round(plot - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                label=f"{day.isoformat()}: {count:,}",
            )
        )
    return BarChart(
        bars=tuple(bars),
        width=WIDTH,
        height=HEIGHT,
        plot_height=plot,
        highest=highest,
        first=days[0][0].isoformat() if days else "",
        last=days[-1][0].isoformat() if days else "",
        total=sum(n for _, n in days),
    )
