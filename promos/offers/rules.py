"""Why a player gets an offer or not: the rules of ``/available-offers``, in their order.

An offer is shown when it is enabled, its trigger holds now, its filters match the attributes
sent, and the player's period (claims) and frequency (impressions) caps allow it. The hot
route decides with these same predicates, many offers at once: ``Offer.enabled`` and
``Offer.triggered`` (``GameOffers.enabled`` / ``triggered``), the filters through
``FilterIndex`` (``filters.matches`` for many offers, tested to agree with it), then
``service.available_to`` (``Cap.allows`` of the period, then of the frequency).
``explain_offers`` walks the same predicates one offer at a time and names the first that
fails, in words; it is never on the hot route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from promos.offers.catalog import offer_body
from promos.offers.filters import Filter, as_number, first_mismatch
from promos.offers.service import NO_HISTORY, Cap, Game, Offer, PlayerOffer

Rule = Literal["enabled", "trigger", "filter", "period", "frequency"]
# The order in which the rules are applied; an exclusion names the first that fails.
RULES: tuple[Rule, ...] = ("enabled", "trigger", "filter", "period", "frequency")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One offer for one player: shown (``rule`` is ``None``), or the rule that left it out."""

    offer: Offer
    history: PlayerOffer
    rule: Rule | None = None
    reason: str | None = None

    @property
    def shown(self) -> bool:
        return self.rule is None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every offer of a game for one player at one moment, oldest first."""

    game: Game
    player_id: str
    attributes: dict[str, str]
    at: datetime
    verdicts: tuple[Verdict, ...]

    @property
    def shown(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.shown]

    @property
    def excluded(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.shown]

    def available(self) -> dict[str, list[dict[str, Any]]]:
        """The body ``/available-offers`` answers: the shown offers by placement."""
        placements: dict[str, list[dict[str, Any]]] = {}
        for verdict in self.shown:
            placements.setdefault(verdict.offer.spec.placement, []).append(
                offer_body(verdict.offer)
            )
        return placements


def explain_offers(
    *,
    game: Game,
    offers: Sequence[Offer],
    histories: Mapping[UUID, PlayerOffer],
    player_id: str,
    attributes: Mapping[str, str],
    now: datetime,
) -> Explanation:
    """Each of ``offers`` (oldest first) shown or left out, by the first rule that fails."""
    now_seconds = int(now.timestamp())  # as the hot route counts seconds
    inefficient = game.allow_inefficient_queries
    verdicts = []
    for offer in offers:
        history = histories.get(offer.id, NO_HISTORY)
        found = _first_failing(
            offer,
            history,
            attributes=attributes,
            now=now,
            now_seconds=now_seconds,
            inefficient=inefficient,
        )
        verdicts.append(
            Verdict(offer, history)
            if found is None
            else Verdict(offer, history, rule=found[0], reason=found[1])
        )
    return Explanation(game, player_id, dict(attributes), now, tuple(verdicts))


def _first_failing(
    offer: Offer,
    history: PlayerOffer,
    *,
    attributes: Mapping[str, str],
    now: datetime,
    now_seconds: int,
    inefficient: bool,
) -> tuple[Rule, str] | None:
    spec = offer.spec
    if not offer.enabled:
        return "enabled", "disabled: the offer is switched off"
    if not offer.triggered(now_seconds):
        return "trigger", _trigger_reason(offer, now_seconds)
    refused = first_mismatch(spec.filters, attributes, inefficient=inefficient)
    if refused is not None:
        return "filter", _filter_reason(
            refused, attributes[refused], spec.filters.get(refused), inefficient=inefficient
        )
    period, frequency = spec.period, spec.frequency
    if not period.allows(history.claim_count, history.last_claim_at, now):
        return "period", _cap_reason(
            "period", "claimed", period, history.claim_count, history.last_claim_at
        )
    if not frequency.allows(history.impression_count, history.last_impression_at, now):
        return "frequency", _cap_reason(
            "frequency", "seen", frequency, history.impression_count, history.last_impression_at
        )
    return None


def _trigger_reason(offer: Offer, now_seconds: int) -> str:
    spec = offer.spec
    if now_seconds < spec.trigger_from:
        return f"trigger: starts {_moment(spec.trigger_from)}"
    return f"trigger: ended {_moment(spec.trigger_to)}"


def _moment(seconds: int) -> str:
    """Unix seconds as a UTC time, or as the number where no calendar holds it."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (Unix seconds)"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float) -> str:
    return f"{value:g}"


def _filter_reason(  # noqa: PLR0911 - one answer per way a filter refuses
    name: str, value: str, found: Filter | None, *, inefficient: bool
) -> str:
    """Why the filter on ``name`` refuses ``value`` (``first_mismatch`` found that it does)."""
    if found is None:
        return (
            f"filter: {name} was sent and the offer has no filter on it "
            "(the game matches such offers only with allowInefficientQueries)"
        )
    if found.kind == "eq":
        return f"filter: {name} is {value!r}, the offer wants {found.value!r}"
    if found.kind == "neq":
        return f"filter: {name} is {value!r}, which the offer excludes"
    if not inefficient:
        return (
            f"filter: {name} has an interval, which the game matches only with "
            "allowInefficientQueries"
        )
    number = as_number(value)
    if number is None:
        return f"filter: {name} {value!r} is not a number"
    if found.geq is not None and number < found.geq:
        return f"filter: {name} {value} is below {_number(found.geq)}"
    upper = found.lt if found.lt is not None else number
    return f"filter: {name} {value} is not below {_number(upper)}"


def _cap_reason(name: str, done: str, cap: Cap, count: int, last: datetime | None) -> str:
    """Why ``cap`` refuses (``Cap.allows`` found that it does): the count, or the wait."""
    if cap.wait is not None and last is not None and not (cap.max and count >= cap.max):
        return (
            f"{name}: {done} at {_when(last)}, once per {cap.every}; "
            f"again from {_when(last + cap.wait)}"
        )
    return f"{name}: {done} {count} of {cap.max} times"
