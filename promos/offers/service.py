"""Games and offer templates: create, version, enable, list; and the rules of one offer.

Claims and impressions (the counting) live in ``promos.offers.counting``; what a player may
see, with the in-process cache, in ``promos.offers.player``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    Numeric,
    String,
    and_,
    any_,
    bindparam,
    false,
    func,
    not_,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from promos.db import DriverReads, insert_for
from promos.offers.durations import InvalidDuration, parse_duration
from promos.offers.errors import GameNotFound, InvalidGame, InvalidOffer, OfferNotFound
from promos.offers.filters import (
    Filter,
    as_number,
    filters_json,
    parse_filters,
    valid_attribute,
)
from promos.offers.tables import (
    games,
    offer_claims,
    offer_impressions,
    offer_players,
    offer_versions,
    offers,
)
from promos.pagination import Key, Page, after, read_page

MAX_COUNT = 2**31 - 1
MAX_TIMESTAMP = 2**63 - 1
MAX_CACHE_AGE = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Game:
    id: str
    name: str
    metadata: dict[str, Any]

    @property
    def cache_max_age(self) -> int | None:
        """``metadata.cacheMaxAge``: seconds for ``Cache-Control: max-age``, if the game sets it."""
        value = self.metadata.get("cacheMaxAge")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def allow_inefficient_queries(self) -> bool:
        return self.metadata.get("allowInefficientQueries") is True


def check_game_metadata(data: Any) -> dict[str, Any]:
    """The game's metadata object; its two keys Promos reads must have their types."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidGame("metadata must be a JSON object")
    age = data.get("cacheMaxAge")
    if age is not None and (
        isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= MAX_CACHE_AGE
    ):
        raise InvalidGame(
            f"metadata.cacheMaxAge must be a whole number of seconds, 0 to {MAX_CACHE_AGE}"
        )
    inefficient = data.get("allowInefficientQueries")
    if inefficient is not None and not isinstance(inefficient, bool):
        raise InvalidGame("metadata.allowInefficientQueries must be true or false")
    return dict(data)


@dataclass(frozen=True, slots=True)
class Cap:
    """A period (claims) or frequency (impressions): at most ``max`` times (0: no limit), and
    not again before ``every`` has passed since the last time ("": no wait)."""

    every: str
    max: int
    wait: timedelta | None = field(default=None, compare=False)

    @classmethod
    def make(cls, every: str, max_: int, *, name: str) -> Cap:
        if isinstance(max_, bool) or not isinstance(max_, int) or not 0 <= max_ <= MAX_COUNT:
            raise InvalidOffer(f"{name}.max must be a whole number from 0 to {MAX_COUNT}")
        if not isinstance(every, str):
            raise InvalidOffer(f"{name}.every must be a string such as '300ms', '1.5h' or ''")
        if every == "" and max_ == 0:
            raise InvalidOffer(f'{name}: every "" and max 0 cannot both hold (no limit at all)')
        wait = None
        if every != "":
            try:
                wait = timedelta(microseconds=parse_duration(every) / 1000)
            except InvalidDuration as exc:
                raise InvalidOffer(f"{name}.every: {exc.message}") from None
        return cls(every, max_, wait)

    def allows(self, count: int, last: datetime | None, now: datetime) -> bool:
        if self.max and count >= self.max:
            return False
        return self.wait is None or last is None or now >= last + self.wait

    def next_time(self, at: datetime) -> int:
        """When the player may next (unix seconds), after a time at ``at``."""
        return math.floor((at + self.wait).timestamp() if self.wait else at.timestamp())

    def next_at(self, count: int, at: datetime) -> int | None:
        """``next_time`` after the ``count``-th time; ``None`` once the maximum is reached."""
        if self.max and count >= self.max:
            return None
        return self.next_time(at)


@dataclass(frozen=True, slots=True)
class OfferSpec:
    """What an offer template says; the same for creating it and for each new version."""

    name: str
    product_id: str | None
    cost: dict[str, Any] | None
    contents: dict[str, Any]
    metadata: dict[str, Any]
    placement: str
    period: Cap
    frequency: Cap
    trigger_from: int
    trigger_to: int
    filters: dict[str, Filter]

    def __post_init__(self) -> None:
        if self.product_id is None and self.cost is None:
            raise InvalidOffer("an offer needs a productId or a cost (or both)")
        for name, bound in (("trigger.from", self.trigger_from), ("trigger.to", self.trigger_to)):
            if not -MAX_TIMESTAMP <= bound <= MAX_TIMESTAMP:
                raise InvalidOffer(f"{name} must fit in 64 bits")
        if self.trigger_to < self.trigger_from:
            raise InvalidOffer("trigger.to must not be before trigger.from")


def make_spec(
    *,
    name: str,
    product_id: str | None,
    cost: Any,
    contents: Any,
    metadata: Any,
    placement: str,
    period: tuple[str, int],
    frequency: tuple[str, int],
    trigger: tuple[int, int],
    filters: Any,
) -> OfferSpec:
    """An ``OfferSpec`` from checked JSON values; ``InvalidOffer`` names what to fix."""
    for label, value, required in (
        ("cost", cost, False),
        ("contents", contents, True),
        ("metadata", metadata, False),
    ):
        if (value is not None or required) and not isinstance(value, Mapping):
            raise InvalidOffer(f"{label} must be a JSON object")
    parsed_filters = parse_filters(filters)
    return OfferSpec(
        name=name,
        product_id=product_id,
        cost=dict(cost) if cost is not None else None,
        contents=dict(contents),
        metadata=dict(metadata or {}),
        placement=placement,
        period=Cap.make(*period, name="period"),
        frequency=Cap.make(*frequency, name="frequency"),
        trigger_from=trigger[0],
        trigger_to=trigger[1],
        filters=parsed_filters,
    )


@dataclass(frozen=True, slots=True)
class Offer:
    id: UUID
    key: UUID
    game_id: str
    version: int
    enabled: bool
    spec: OfferSpec
    created_at: datetime
    updated_at: datetime

    def triggered(self, now_seconds: int) -> bool:
        return self.spec.trigger_from <= now_seconds <= self.spec.trigger_to


@dataclass(frozen=True, slots=True)
class PlayerOffer:
    """What one player did with one offer: claims and impressions, counted."""

    claim_count: int = 0
    last_claim_at: datetime | None = None
    impression_count: int = 0
    last_impression_at: datetime | None = None


NO_HISTORY = PlayerOffer()


def available_to(offer: Offer, history: PlayerOffer, now: datetime) -> bool:
    """Whether the offer's period (claims) and frequency (impressions) let the player have it."""
    spec = offer.spec
    return spec.period.allows(
        history.claim_count, history.last_claim_at, now
    ) and spec.frequency.allows(history.impression_count, history.last_impression_at, now)


# --- games -----------------------------------------------------------------------------------


def _game(row: Any) -> Game:
    return Game(id=row.id, name=row.name, metadata=dict(row.metadata or {}))


async def upsert_game(
    conn: AsyncConnection, *, game_id: str, name: str, metadata: dict[str, Any], now: datetime
) -> Game:
    insert = insert_for(conn)
    statement = insert(games).values(
        id=game_id, name=name, metadata=metadata, created_at=now, updated_at=now
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[games.c.id],
            set_={
                "name": name,
                "metadata": metadata,
                "updated_at": now,
                "revision": games.c.revision + 1,
            },
        )
    )
    return Game(id=game_id, name=name, metadata=metadata)


async def _touch_game(conn: AsyncConnection, game_id: str) -> None:
    """Move the game's revision: every process's catalog reloads its offers."""
    await conn.execute(
        update(games).where(games.c.id == game_id).values(revision=games.c.revision + 1)
    )


async def game_revision(conn: AsyncConnection, game_id: str) -> int | None:
    """The game's revision (``None``: no such game); one primary-key read."""
    value = (
        await conn.execute(select(games.c.revision).where(games.c.id == game_id))
    ).scalar_one_or_none()
    return None if value is None else int(value)


async def list_games(conn: AsyncConnection) -> list[Game]:
    rows = await conn.execute(select(games).order_by(games.c.id))
    return [_game(row) for row in rows]


async def games_page(
    conn: AsyncConnection,
    *,
    limit: int,
    after_key: Key | None = None,
    only: Collection[str] | None = None,
) -> Page[Game]:
    """Games by id: a page after ``after_key`` (id); ``only`` these, if given."""
    query = select(games).order_by(games.c.id).where(after((games.c.id,), after_key))
    if only is not None:
        query = query.where(games.c.id.in_(sorted(only)))
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_game)


async def get_game(conn: AsyncConnection, game_id: str) -> Game:
    found = await find_game(conn, game_id)
    if found is None:
        raise GameNotFound(f"game {game_id!r} does not exist")
    return found


async def find_game(
    conn: AsyncConnection, game_id: str, *, for_update: bool = False
) -> Game | None:
    """The game, or ``None``; ``for_update`` locks its row until the transaction ends."""
    query = select(games).where(games.c.id == game_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    return None if row is None else _game(row)


# --- offers ----------------------------------------------------------------------------------


def offer_of(row: Any) -> Offer:
    """An ``Offer`` from a row of ``offers``. Stored offers were checked when written."""
    spec = _spec_of(row)
    return Offer(
        id=row.id,
        key=row.key,
        game_id=row.game_id,
        version=row.version,
        enabled=row.enabled,
        spec=spec,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _spec_of(row: Any) -> OfferSpec:
    return OfferSpec(
        name=row.name,
        product_id=row.product_id,
        cost=row.cost,
        contents=row.contents,
        metadata=row.metadata or {},
        placement=row.placement,
        period=Cap.make(row.period_every, row.period_max, name="period"),
        frequency=Cap.make(row.frequency_every, row.frequency_max, name="frequency"),
        trigger_from=row.trigger_from,
        trigger_to=row.trigger_to,
        filters=parse_filters(row.filters),
    )


def _columns(spec: OfferSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "product_id": spec.product_id,
        "cost": spec.cost,
        "contents": spec.contents,
        "metadata": spec.metadata,
        "placement": spec.placement,
        "period_every": spec.period.every,
        "period_max": spec.period.max,
        "frequency_every": spec.frequency.every,
        "frequency_max": spec.frequency.max,
        "trigger_from": spec.trigger_from,
        "trigger_to": spec.trigger_to,
        "filters": filters_json(spec.filters),
    }


async def create_offer(
    conn: AsyncConnection, *, game_id: str, spec: OfferSpec, now: datetime
) -> Offer:
    """A new offer template, enabled, at version 1."""
    await get_game(conn, game_id)
    offer = Offer(
        id=uuid4(),
        key=uuid4(),
        game_id=game_id,
        version=1,
        enabled=True,
        spec=spec,
        created_at=now,
        updated_at=now,
    )
    await conn.execute(
        offers.insert().values(
            game_id=game_id,
            id=offer.id,
            key=offer.key,
            version=1,
            enabled=True,
            created_at=now,
            updated_at=now,
            **_columns(spec),
        )
    )
    await _keep_version(conn, offer)
    await _touch_game(conn, game_id)
    return offer


async def update_offer(
    conn: AsyncConnection, *, game_id: str, offer_id: UUID, spec: OfferSpec, now: datetime
) -> Offer:
    """The offer's next version: same id, a new key, version + 1 (in one statement)."""
    row = (
        await conn.execute(
            update(offers)
            .where(offers.c.game_id == game_id, offers.c.id == offer_id)
            .values(version=offers.c.version + 1, key=uuid4(), updated_at=now, **_columns(spec))
            .returning(*offers.c)
        )
    ).first()
    if row is None:
        raise OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")
    offer = offer_of(row)
    await _keep_version(conn, offer)
    await _touch_game(conn, game_id)
    return offer


async def _keep_version(conn: AsyncConnection, offer: Offer) -> None:
    """Keep the offer's version as it was made (``offers`` holds only the current one)."""
    await conn.execute(
        offer_versions.insert().values(
            game_id=offer.game_id,
            offer_id=offer.id,
            version=offer.version,
            key=offer.key,
            created_at=offer.updated_at,
            **_columns(offer.spec),
        )
    )


@dataclass(frozen=True, slots=True)
class OfferVersion:
    """One version of an offer as it was made."""

    version: int
    key: UUID
    spec: OfferSpec
    created_at: datetime


async def offer_versions_of(
    conn: AsyncConnection, *, game_id: str, offer_id: UUID
) -> list[OfferVersion]:
    """Every version kept of the offer, the newest first (``OfferNotFound`` if none)."""
    rows = (
        await conn.execute(
            select(offer_versions)
            .where(offer_versions.c.game_id == game_id, offer_versions.c.offer_id == offer_id)
            .order_by(offer_versions.c.version.desc())
        )
    ).all()
    if not rows:
        raise OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")
    return [OfferVersion(row.version, row.key, _spec_of(row), row.created_at) for row in rows]


async def set_enabled(
    conn: AsyncConnection, *, game_id: str, offer_id: UUID, enabled: bool, now: datetime
) -> Offer:
    row = (
        await conn.execute(
            update(offers)
            .where(offers.c.game_id == game_id, offers.c.id == offer_id)
            .values(enabled=enabled, updated_at=now)
            .returning(*offers.c)
        )
    ).first()
    if row is None:
        raise OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")
    await _touch_game(conn, game_id)
    return offer_of(row)


async def get_offer(
    conn: AsyncConnection, *, game_id: str, offer_id: UUID, for_update: bool = False
) -> Offer:
    """The offer's current version; ``for_update`` locks its row until the transaction ends."""
    query = select(offers).where(offers.c.game_id == game_id, offers.c.id == offer_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")
    return offer_of(row)


async def list_offers(
    conn: AsyncConnection, *, game_id: str, limit: int, offset: int
) -> tuple[list[Offer], int]:
    """A page of the game's offers, oldest first, and how many the game has in all."""
    total = (
        await conn.execute(select(func.count()).where(offers.c.game_id == game_id))
    ).scalar_one()
    rows = await conn.execute(
        select(offers)
        .where(offers.c.game_id == game_id)
        .order_by(offers.c.created_at, offers.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [offer_of(row) for row in rows], int(total)


async def offers_page(
    conn: AsyncConnection,
    *,
    game_id: str,
    limit: int,
    after_key: Key | None = None,
    placement: str | None = None,
) -> Page[Offer]:
    """The game's offers (of one ``placement``, if given), oldest first: a page after
    ``after_key`` (created at, id)."""
    order = (offers.c.created_at, offers.c.id)
    query = (
        select(offers).where(offers.c.game_id == game_id, after(order, after_key)).order_by(*order)
    )
    if placement is not None:
        query = query.where(offers.c.placement == placement)
    return await read_page(
        conn, query, limit=limit, key=lambda row: (row.created_at, row.id), item=offer_of
    )


async def game_offers(conn: AsyncConnection, game_id: str) -> list[Offer]:
    """Every offer of the game (enabled or not), oldest first: what the cache holds."""
    rows = await conn.execute(
        select(offers).where(offers.c.game_id == game_id).order_by(offers.c.created_at, offers.c.id)
    )
    return [offer_of(row) for row in rows]


async def offers_with_product(
    conn: AsyncConnection, *, game_id: str, product_id: str
) -> list[Offer]:
    rows = await conn.execute(
        select(offers)
        .where(offers.c.game_id == game_id, offers.c.product_id == product_id)
        .order_by(offers.c.created_at, offers.c.id)
    )
    return [offer_of(row) for row in rows]


def pick_claimed(candidates: Sequence[Offer], purchased_at: int) -> Offer | None:
    """The offer a claim by productId means: an enabled one whose trigger held at the purchase,
    else any enabled one, else any; the most recently changed first."""
    ordered = sorted(candidates, key=lambda o: o.updated_at, reverse=True)
    for wanted in (
        lambda o: o.enabled and o.triggered(purchased_at),
        lambda o: o.enabled,
        lambda _o: True,
    ):
        for offer in ordered:
            if wanted(offer):
                return offer
    return None


# --- what a player may see, in SQL (when the in-process cache is off) -----------------------


def _filter_clause(
    dialect: str, attributes: Mapping[str, str], *, inefficient: bool
) -> ColumnElement[bool]:
    """The SQL form of ``promos.offers.filters.matches``.

    PostgreSQL: ``filters @> '{"k": {"eq": "v"}}'`` goes through the GIN index (jsonb_path_ops);
    the rest are checks on the rows that index (and the game) leaves. SQLite: json_extract.
    """
    clauses: list[ColumnElement[bool]] = []
    column = offers.c.filters
    for name, value in attributes.items():
        if not valid_attribute(name):  # no filter can name it (see filters.ATTRIBUTE)
            if inefficient:
                continue
            return false()
        number = as_number(value)
        bound = 0.0 if number is None else number  # an interval is only asked about a number
        if dialect == "postgresql":
            document = type_coerce(column, JSONB())
            spec = document[name]
            eq = document.contains({name: {"eq": value}})
            neq = and_(spec.has_key("neq"), spec["neq"].astext != value)
            absent = not_(document.has_key(name))
            has_geq, has_lt = spec.has_key("geq"), spec.has_key("lt")
            interval = and_(
                or_(has_geq, has_lt),
                or_(not_(has_geq), spec["geq"].astext.cast(Numeric()) <= bound),
                or_(not_(has_lt), spec["lt"].astext.cast(Numeric()) > bound),
            )
        else:
            path = f'$."{name}"'
            eq = func.json_extract(column, f"{path}.eq") == value
            neq = func.json_extract(column, f"{path}.neq") != value
            absent = func.json_type(column, path).is_(None)
            geq = func.json_extract(column, f"{path}.geq")
            lt = func.json_extract(column, f"{path}.lt")
            interval = and_(
                or_(geq.is_not(None), lt.is_not(None)),
                or_(geq.is_(None), geq <= bound),
                or_(lt.is_(None), lt > bound),
            )
        allowed = [eq, neq]
        if inefficient:
            allowed.append(absent)
            if number is not None:
                allowed.append(interval)
        clauses.append(or_(*allowed))
    return and_(true(), *clauses)


async def matching_offers(
    conn: AsyncConnection, *, game: Game, attributes: Mapping[str, str], now_seconds: int
) -> list[Offer]:
    """The game's enabled, triggered offers whose filters match ``attributes``, oldest first."""
    rows = await conn.execute(
        select(offers)
        .where(
            offers.c.game_id == game.id,
            offers.c.enabled,
            offers.c.trigger_from <= now_seconds,
            offers.c.trigger_to >= now_seconds,
            _filter_clause(
                conn.dialect.name, attributes, inefficient=game.allow_inefficient_queries
            ),
        )
        .order_by(offers.c.created_at, offers.c.id)
    )
    return [offer_of(row) for row in rows]


_HISTORY_COLUMNS = select(
    offer_players.c.player_id,
    offer_players.c.offer_id,
    offer_players.c.claim_count,
    offer_players.c.last_claim_at,
    offer_players.c.impression_count,
    offer_players.c.last_impression_at,
)
_HISTORIES = {
    # One array parameter: one cached, prepared statement whatever the group's size (an
    # expanding IN renders new SQL for every size, which cost a tenth of the hot route's CPU).
    "postgresql": _HISTORY_COLUMNS.where(
        offer_players.c.game_id == bindparam("game_id"),
        offer_players.c.player_id == any_(bindparam("player_ids", type_=ARRAY(String))),
    ),
    "sqlite": _HISTORY_COLUMNS.where(
        offer_players.c.game_id == bindparam("game_id"),
        offer_players.c.player_id.in_(bindparam("player_ids", expanding=True)),
    ),
}


async def player_history(
    conn: AsyncConnection, *, game_id: str, player_id: str
) -> dict[UUID, PlayerOffer]:
    """Everything the player claimed or saw in the game, by offer: one primary-key range read."""
    return (await player_histories(conn, game_id=game_id, player_ids=[player_id]))[player_id]


async def player_histories(
    source: AsyncConnection | DriverReads, *, game_id: str, player_ids: Sequence[str]
) -> dict[str, dict[UUID, PlayerOffer]]:
    """The histories of several players of one game, in one read of the primary key."""
    found: dict[str, dict[UUID, PlayerOffer]] = {p: {} for p in player_ids}
    params = {"game_id": game_id, "player_ids": list(set(player_ids))}
    if isinstance(source, DriverReads):
        rows: Iterable[Sequence[Any]] = await source.fetch(_HISTORIES["postgresql"], params)
    else:
        rows = await source.execute(_HISTORIES[source.dialect.name], params)
    for player, offer_id, claims, claimed_at, seen, seen_at in rows:
        found[player][offer_id] = PlayerOffer(claims, claimed_at, seen, seen_at)
    return found


# --- a player's history, for people (the console) ------------------------------------------


async def placements(conn: AsyncConnection, game_id: str) -> list[str]:
    """The placements the game's offers name, in order."""
    rows = await conn.execute(
        select(offers.c.placement)
        .where(offers.c.game_id == game_id)
        .distinct()
        .order_by(offers.c.placement)
    )
    return [row[0] for row in rows]


@dataclass(frozen=True, slots=True)
class Claim:
    transaction_id: str
    offer_id: UUID
    offer_version: int
    purchased_at: int
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class Impression:
    impression_id: UUID
    offer_id: UUID
    seen_at: datetime


async def player_claims(
    conn: AsyncConnection, *, game_id: str, player_id: str, limit: int
) -> list[Claim]:
    """The player's last ``limit`` claims in the game, newest first."""
    rows = await conn.execute(
        select(offer_claims)
        .where(offer_claims.c.game_id == game_id, offer_claims.c.player_id == player_id)
        .order_by(offer_claims.c.claimed_at.desc())
        .limit(limit)
    )
    return [
        Claim(r.transaction_id, r.offer_id, r.offer_version, r.purchased_at, r.claimed_at)
        for r in rows
    ]


async def player_impressions(
    conn: AsyncConnection, *, game_id: str, player_id: str, limit: int
) -> list[Impression]:
    """The player's last ``limit`` impressions in the game, newest first."""
    rows = await conn.execute(
        select(offer_impressions)
        .where(offer_impressions.c.game_id == game_id, offer_impressions.c.player_id == player_id)
        .order_by(offer_impressions.c.seen_at.desc())
        .limit(limit)
    )
    return [Impression(r.impression_id, r.offer_id, r.seen_at) for r in rows]


async def offer_names(
    conn: AsyncConnection, *, game_id: str, offer_ids: Iterable[UUID]
) -> dict[UUID, str]:
    """The names of these offers of the game, by id (primary-key reads)."""
    wanted = list(set(offer_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(offers.c.id, offers.c.name).where(
            offers.c.game_id == game_id, offers.c.id.in_(wanted)
        )
    )
    return {row.id: row.name for row in rows}
