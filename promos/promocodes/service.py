"""Promo codes: generating them, finding them, and using them (validate, redeem, roll back).

Every rule of a redemption (uses left, expiry, bound customer, products) is in the WHERE
clause of the one UPDATE that takes the use, so concurrent redemptions can never take more
uses than there are. Only when that UPDATE finds nothing do we read why.

A redemption is a ``promocode.redeemed`` event, and its rollback a
``promocode.redeem_rolled_back`` event, when a webhook subscription wants that type; written
with the change (on PostgreSQL, in the statement that records the redemption). A replayed
redemption (same Idempotency-Key) emits nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql.elements import ColumnElement

from promos.db import UTCDateTime, after_commit
from promos.events.outbox import emit_events, emitting, event_time
from promos.events.types import PROMOCODE_REDEEM_ROLLED_BACK, PROMOCODE_REDEEMED
from promos.observability import metrics
from promos.pagination import Key, Page, after
from promos.promocodes import bulk, carts, expiry
from promos.promocodes.errors import (
    IdempotencyKeyReused,
    InvalidDiscount,
    InvalidPromocode,
    PromocodeExpired,
    PromocodeNotForCustomer,
    PromocodeNotForProducts,
    PromocodeNotFound,
    PromocodeUsedUp,
    RedemptionNotFound,
    RedemptionRolledBack,
)
from promos.promocodes.generate import DEFAULT_CHARSET, check_capacity, code_shape
from promos.promocodes.tables import (
    promocode_generations as generations,
)
from promos.promocodes.tables import (
    promocode_products as products_table,
)
from promos.promocodes.tables import (
    promocode_redemptions as redemptions,
)
from promos.promocodes.tables import (
    promocodes,
)
from promos.validation import HIDDEN, SURROGATES, has_control_character

MAX_USAGE_COUNT = 1_000_000
MAX_PRODUCTS = 1000
MAX_PERCENTAGE = Decimal(100)
MAX_AMOUNT = Decimal("9999999999.99")
_EMAIL = re.compile(rf"[^\s@{HIDDEN}{SURROGATES}]+@[^\s@{HIDDEN}{SURROGATES}]+")
_SKU = re.compile(r"[^\s]{1,255}")


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    """What to generate; ``check_spec`` (called by ``generate``) refuses what cannot be."""

    pattern: str
    count: int
    usage_count: int
    charset: str = DEFAULT_CHARSET
    prefix: str = ""
    postfix: str = ""
    discount_percentage: Decimal | None = None
    discount_amount: Decimal | None = None
    expires_in: date | None = None
    products: tuple[str, ...] = ()
    usage_by: str | None = None
    reusable_after_cancel: bool = True


@dataclass(frozen=True, slots=True)
class Generation:
    id: int
    pattern: str
    charset: str
    prefix: str
    postfix: str
    count: int
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    usage_count: int
    expires_in: date | None
    products: tuple[str, ...]
    usage_by: str | None
    created_at: datetime
    # Whether a cancelled redemption's use comes back to the code.
    reusable_after_cancel: bool = True


@dataclass(frozen=True, slots=True)
class Generated:
    generation: Generation
    # The first codes of the generation (all of them up to ``bulk.SAMPLE``).
    codes: list[str]


@dataclass(frozen=True, slots=True)
class Promocode:
    id: int
    code: str
    usage_count: int
    generation: Generation
    # The code's own cancellation policy, if it has one (else its generation's).
    own_reusable_after_cancel: bool | None = None

    @property
    def reusable_after_cancel(self) -> bool:
        """Whether a cancelled redemption's use comes back to this code."""
        if self.own_reusable_after_cancel is not None:
            return self.own_reusable_after_cancel
        return self.generation.reusable_after_cancel

    @property
    def discount_percentage(self) -> Decimal | None:
        return self.generation.discount_percentage

    @property
    def discount_amount(self) -> Decimal | None:
        return self.generation.discount_amount

    @property
    def expires_in(self) -> date | None:
        return self.generation.expires_in

    @property
    def products(self) -> tuple[str, ...]:
        return self.generation.products

    @property
    def usage_by(self) -> str | None:
        return self.generation.usage_by

    @property
    def created_at(self) -> datetime:
        return self.generation.created_at


@dataclass(frozen=True, slots=True)
class Redemption:
    id: int
    code: str
    customer: str | None
    idempotency_key: str | None
    redeemed_at: datetime
    rolled_back_at: datetime | None
    usage_count: int  # uses the code has left now
    # Set by a rollback: whether the use came back (the code's cancellation policy).
    use_given_back: bool | None = None


@dataclass(frozen=True, slots=True)
class PromocodeFilter:
    usage_by: str | None = None
    kind: Literal["percentage", "amount"] | None = None
    expires_before: date | None = None
    expires_after: date | None = None
    search: str | None = None
    generation_id: int | None = None
    # One code exactly (the console's export of a code's redemptions).
    code: str | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_discount(percentage: Decimal | None, amount: Decimal | None) -> None:
    """Exactly one discount: a percentage in (0, 100] or a positive amount, in cents at most."""
    if percentage is not None and amount is not None:
        raise InvalidDiscount("set discount_percentage or discount_amount, not both")
    if percentage is None and amount is None:
        raise InvalidDiscount("set discount_percentage or discount_amount")
    for name, value, most in (
        ("discount_percentage", percentage, MAX_PERCENTAGE),
        ("discount_amount", amount, MAX_AMOUNT),
    ):
        if value is None:
            continue
        if not value.is_finite() or not 0 < value <= most:
            raise InvalidDiscount(f"{name} must be more than 0 and at most {most}")
        if value != value.quantize(Decimal("0.01")):
            raise InvalidDiscount(f"{name} has at most 2 decimal places")


def check_spec(spec: GenerationSpec, *, today: date) -> None:
    """Refuse, before anything is stored, a generation that cannot be made as asked."""
    check_discount(spec.discount_percentage, spec.discount_amount)
    check_capacity(code_shape(spec.pattern, spec.charset, spec.prefix, spec.postfix), spec.count)
    if not 1 <= spec.usage_count <= MAX_USAGE_COUNT:
        raise InvalidPromocode(f"usage_count must be from 1 to {MAX_USAGE_COUNT}")
    if spec.expires_in is not None and spec.expires_in < today:
        raise InvalidPromocode(
            f"expires_in {spec.expires_in.isoformat()} is in the past (today is "
            f"{today.isoformat()}, UTC)"
        )
    if len(spec.products) > MAX_PRODUCTS:
        raise InvalidPromocode(f"at most {MAX_PRODUCTS} products")
    for sku in spec.products:
        if not _SKU.fullmatch(sku) or has_control_character(sku):
            raise InvalidPromocode(f"product {sku!r}: a SKU is 1 to 255 characters, no spaces")
    if spec.usage_by is not None and (
        len(spec.usage_by) > 255 or not _EMAIL.fullmatch(spec.usage_by.strip())  # noqa: PLR2004
    ):
        raise InvalidPromocode(f"usage_by {spec.usage_by!r} is not an e-mail address")


async def generate(
    conn: AsyncConnection,
    *,
    spec: GenerationSpec,
    now: datetime,
    on_progress: bulk.Progress | None = None,
    staged: bool = False,
) -> Generated:
    """Generate ``spec.count`` codes, all in the caller's transaction: all of them or none.
    ``staged``: SQLite only, ``bulk.stage_sqlite`` drew them on ``conn`` already."""
    check_spec(spec, today=now.date())
    shape = code_shape(spec.pattern, spec.charset, spec.prefix, spec.postfix)
    skus = tuple(dict.fromkeys(spec.products))
    usage_by = normalize_email(spec.usage_by) if spec.usage_by is not None else None
    generation_id = (
        await conn.execute(
            generations.insert()
            .values(
                pattern=spec.pattern,
                charset=spec.charset,
                prefix=spec.prefix,
                postfix=spec.postfix,
                count=spec.count,
                discount_percentage=spec.discount_percentage,
                discount_amount=spec.discount_amount,
                usage_count=spec.usage_count,
                expires_in=spec.expires_in,
                usage_by=usage_by,
                created_at=now,
                reusable_after_cancel=spec.reusable_after_cancel,
            )
            .returning(generations.c.id)
        )
    ).scalar_one()
    if skus:
        await conn.execute(
            products_table.insert(), [{"generation_id": generation_id, "sku": s} for s in skus]
        )
    sample = await bulk.store_codes(
        conn,
        shape=shape,
        count=spec.count,
        generation_id=generation_id,
        usage_count=spec.usage_count,
        on_progress=on_progress,
        staged=staged,
    )
    generation = Generation(
        id=generation_id,
        pattern=spec.pattern,
        charset=spec.charset,
        prefix=spec.prefix,
        postfix=spec.postfix,
        count=spec.count,
        discount_percentage=spec.discount_percentage,
        discount_amount=spec.discount_amount,
        usage_count=spec.usage_count,
        expires_in=spec.expires_in,
        products=skus,
        usage_by=usage_by,
        created_at=now,
        reusable_after_cancel=spec.reusable_after_cancel,
    )
    return Generated(generation, sample)


# --- reading -----------------------------------------------------------------------------------

_COLUMNS = (
    promocodes.c.id,
    promocodes.c.code,
    promocodes.c.usage_count,
    promocodes.c.generation_id,
    generations.c.pattern,
    generations.c.charset,
    generations.c.prefix,
    generations.c.postfix,
    generations.c.count,
    generations.c.discount_percentage,
    generations.c.discount_amount,
    generations.c.usage_count.label("generation_usage_count"),
    generations.c.expires_in,
    generations.c.usage_by,
    generations.c.created_at,
    generations.c.reusable_after_cancel.label("generation_reusable_after_cancel"),
    promocodes.c.reusable_after_cancel,
)
_JOINED = promocodes.join(generations, promocodes.c.generation_id == generations.c.id)


async def _products_of(conn: AsyncConnection, ids: set[int]) -> dict[int, tuple[str, ...]]:
    if not ids:
        return {}
    rows = await conn.execute(
        select(products_table.c.generation_id, products_table.c.sku)
        .where(products_table.c.generation_id.in_(ids))
        .order_by(products_table.c.generation_id, products_table.c.sku)
    )
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(row.generation_id, []).append(row.sku)
    return {k: tuple(v) for k, v in found.items()}


async def _promocodes(conn: AsyncConnection, rows: Sequence[Any]) -> list[Promocode]:
    products = await _products_of(conn, {row.generation_id for row in rows})
    # Codes of one generation share its terms: one Generation each (an export reads many).
    generations_: dict[int, Generation] = {}
    found = []
    for row in rows:
        generation = generations_.get(row.generation_id)
        if generation is None:
            generation = generations_[row.generation_id] = Generation(
                id=row.generation_id,
                pattern=row.pattern,
                charset=row.charset,
                prefix=row.prefix,
                postfix=row.postfix,
                count=row.count,
                discount_percentage=row.discount_percentage,
                discount_amount=row.discount_amount,
                usage_count=row.generation_usage_count,
                expires_in=row.expires_in,
                products=products.get(row.generation_id, ()),
                usage_by=row.usage_by,
                created_at=row.created_at,
                reusable_after_cancel=row.generation_reusable_after_cancel,
            )
        found.append(
            Promocode(row.id, row.code, row.usage_count, generation, row.reusable_after_cancel)
        )
    return found


async def get_promocode(
    conn: AsyncConnection, code: str, *, for_update: bool = False, now: datetime | None = None
) -> Promocode:
    """The code; ``for_update`` locks its row (not its generation's) until the transaction ends.

    With ``now``, its uses left count the uses of its holds lapsed by then as free, as the
    next taker will find them (``expiry``); without, they are the stored figure.
    """
    columns = _COLUMNS
    if now is not None:
        left = (promocodes.c.usage_count + expiry.lapsed_uses(now)).label("usage_count")
        columns = (*_COLUMNS[:2], left, *_COLUMNS[3:])
    query = select(*columns).select_from(_JOINED).where(promocodes.c.code == code)
    if for_update:
        query = query.with_for_update(of=promocodes)
    rows = (await conn.execute(query)).all()
    if not rows:
        raise PromocodeNotFound(f"promo code {code!r} does not exist")
    return (await _promocodes(conn, rows))[0]


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(filters: PromocodeFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.usage_by is not None:
        where.append(generations.c.usage_by == normalize_email(filters.usage_by))
    if filters.kind == "percentage":
        where.append(generations.c.discount_percentage.is_not(None))
    elif filters.kind == "amount":
        where.append(generations.c.discount_amount.is_not(None))
    if filters.expires_before is not None:
        where.append(generations.c.expires_in < filters.expires_before)
    if filters.expires_after is not None:
        where.append(
            or_(
                generations.c.expires_in.is_(None), generations.c.expires_in > filters.expires_after
            )
        )
    if filters.search:
        where.append(
            func.lower(promocodes.c.code).like(
                f"%{_escape_like(filters.search.lower())}%", escape="\\"
            )
        )
    if filters.generation_id is not None:
        where.append(promocodes.c.generation_id == filters.generation_id)
    if filters.code is not None:
        where.append(promocodes.c.code == filters.code)
    return where


async def list_promocodes(
    conn: AsyncConnection,
    *,
    filters: PromocodeFilter = PromocodeFilter(),
    limit: int = 100,
    offset: int = 0,
) -> list[Promocode]:
    """Promo codes in the order they were made, filtered."""
    query = (
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(*_conditions(filters))
        .order_by(promocodes.c.id)
        .limit(limit)
        .offset(offset)
    )
    return await _promocodes(conn, (await conn.execute(query)).all())


async def promocodes_page(
    conn: AsyncConnection,
    *,
    filters: PromocodeFilter = PromocodeFilter(),
    limit: int,
    after_key: Key | None = None,
) -> Page[Promocode]:
    """Promo codes in the order they were made, filtered: a page after ``after_key`` (id)."""
    query = (
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(*_conditions(filters), after((promocodes.c.id,), after_key))
        .order_by(promocodes.c.id)
        .limit(limit + 1)
    )
    rows = (await conn.execute(query)).all()
    found = await _promocodes(conn, rows[:limit])
    return Page(found, (found[-1].id,) if len(rows) > limit else None)


async def set_uses_left(conn: AsyncConnection, code: str, *, usage_count: int) -> Promocode:
    """Set how many uses the code has left (this code only; its generation's terms stay)."""
    if not 0 <= usage_count <= MAX_USAGE_COUNT:
        raise InvalidPromocode(f"usage_count must be from 0 to {MAX_USAGE_COUNT}")
    result = await conn.execute(
        update(promocodes).where(promocodes.c.code == code).values(usage_count=usage_count)
    )
    if result.rowcount == 0:
        raise PromocodeNotFound(f"promo code {code!r} does not exist")
    return await get_promocode(conn, code)


async def set_cancel_policy(
    conn: AsyncConnection, code: str, *, reusable_after_cancel: bool | None
) -> Promocode:
    """Give the code its own cancellation policy (None: its generation's again)."""
    result = await conn.execute(
        update(promocodes)
        .where(promocodes.c.code == code)
        .values(reusable_after_cancel=reusable_after_cancel)
    )
    if result.rowcount == 0:
        raise PromocodeNotFound(f"promo code {code!r} does not exist")
    return await get_promocode(conn, code)


async def delete_promocode(conn: AsyncConnection, code: str) -> None:
    result = await conn.execute(delete(promocodes).where(promocodes.c.code == code))
    if result.rowcount == 0:
        raise PromocodeNotFound(f"promo code {code!r} does not exist")


# --- using -------------------------------------------------------------------------------------


def _usable(
    *, customer: str | None, skus: Sequence[str] | None, today: date
) -> list[ColumnElement[bool]]:
    """The rules a code must meet to be used, as SQL on ``promocodes`` (and its generation).

    ``customer`` / ``skus`` of ``None``: that rule is not checked (the caller vouches).
    """
    generation_rules: list[ColumnElement[bool]] = [
        generations.c.id == promocodes.c.generation_id,
        or_(generations.c.expires_in.is_(None), generations.c.expires_in >= today),
    ]
    if customer is not None:
        generation_rules.append(
            or_(generations.c.usage_by.is_(None), generations.c.usage_by == customer)
        )
    if skus is not None:
        listed = products_table.c.generation_id == generations.c.id
        generation_rules.append(
            or_(
                ~exists().where(listed),
                exists().where(listed, products_table.c.sku.in_(list(skus))),
            )
        )
    return [promocodes.c.usage_count > 0, exists().where(and_(*generation_rules))]


def _why_unusable(
    found: Promocode, *, customer: str | None, skus: Sequence[str] | None, today: date
) -> Exception:
    code = found.code
    if found.expires_in is not None and found.expires_in < today:
        return PromocodeExpired(f"promo code {code!r} expired on {found.expires_in.isoformat()}")
    if customer is not None and found.usage_by is not None and found.usage_by != customer:
        return PromocodeNotForCustomer(f"promo code {code!r} is bound to another customer")
    if skus is not None and found.products and not set(found.products) & set(skus):
        return PromocodeNotForProducts(
            f"promo code {code!r} applies to {', '.join(found.products)} only"
        )
    return PromocodeUsedUp(f"promo code {code!r} has no uses left")


async def validate(
    conn: AsyncConnection,
    *,
    code: str,
    customer: str | None,
    skus: Sequence[str] | None,
    at: datetime,
) -> Promocode:
    """The code, if ``customer`` may use it on a cart of ``skus`` at ``at``; changes nothing."""
    found = await get_promocode(conn, code, now=at)
    who = normalize_email(customer) if customer is not None else None
    problem = _why_unusable(found, customer=who, skus=skus, today=at.date())
    if not isinstance(problem, PromocodeUsedUp) or found.usage_count <= 0:
        raise problem
    return found


_REDEMPTION_COLUMNS = (
    redemptions.c.id,
    promocodes.c.code,
    redemptions.c.customer,
    redemptions.c.idempotency_key,
    redemptions.c.redeemed_at,
    redemptions.c.rolled_back_at,
    promocodes.c.usage_count,
)
_REDEMPTIONS = redemptions.join(promocodes, redemptions.c.promocode_id == promocodes.c.id)


async def _redemption_by_key(conn: AsyncConnection, code: str, key: str) -> Redemption | None:
    row = (
        await conn.execute(
            select(*_REDEMPTION_COLUMNS)
            .select_from(_REDEMPTIONS)
            .where(promocodes.c.code == code, redemptions.c.idempotency_key == key)
        )
    ).first()
    return Redemption(*row) if row is not None else None


async def get_redemption(conn: AsyncConnection, redemption_id: int) -> Redemption:
    row = (
        await conn.execute(
            select(*_REDEMPTION_COLUMNS)
            .select_from(_REDEMPTIONS)
            .where(redemptions.c.id == redemption_id)
        )
    ).first()
    if row is None:
        raise RedemptionNotFound(f"redemption {redemption_id} does not exist")
    return Redemption(*row)


def _replayed(earlier: Redemption, customer: str | None) -> Redemption:
    if earlier.customer != customer:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {earlier.idempotency_key!r} was used by another customer"
        )
    return earlier


async def take_use(
    conn: AsyncConnection,
    *,
    code: str,
    customer: str | None,
    skus: Sequence[str] | None,
    now: datetime,
) -> tuple[AsyncTransaction, Row[Any]] | None:
    """Take one use of the code in a savepoint that the caller commits or rolls back; the
    code's (id, usage_count) after it. None when no use is free for this customer and cart.

    The rules are the WHERE clause of one UPDATE. Only when it finds nothing are the uses of
    lapsed holds given back (``expiry``), and the UPDATE tried once more: a redemption that
    finds a free use pays nothing for holds.
    """
    for _ in range(2):
        savepoint = await conn.begin_nested()
        taken = (
            await conn.execute(
                update(promocodes)
                .where(
                    promocodes.c.code == code,
                    *_usable(customer=customer, skus=skus, today=now.date()),
                )
                .values(usage_count=promocodes.c.usage_count - 1)
                .returning(promocodes.c.id, promocodes.c.usage_count)
            )
        ).first()
        if taken is not None:
            return savepoint, taken
        await savepoint.rollback()
        if not await expiry.give_back_lapsed(conn, code=code, now=now):
            break
    return None


async def redeem(
    conn: AsyncConnection,
    *,
    code: str,
    customer: str | None,
    skus: Sequence[str] | None,
    now: datetime,
    idempotency_key: str | None = None,
) -> Redemption:
    """Use one use of the code, atomically; a retry with the same key gets the same answer."""
    who = normalize_email(customer) if customer is not None else None
    if idempotency_key is not None:
        earlier = await _redemption_by_key(conn, code, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, who)
    took = await take_use(conn, code=code, customer=who, skus=skus, now=now)
    if took is None:
        found = await get_promocode(conn, code)
        raise _why_unusable(found, customer=who, skus=skus, today=now.date())
    savepoint, taken = took
    redemption = Redemption(0, code, who, idempotency_key, now, None, taken.usage_count)
    try:
        redemption_id = await _record_redemption(conn, redemption, promocode_id=taken.id, skus=skus)
    except IntegrityError:
        # A concurrent retry with the same key committed first: give the use back, replay it.
        await savepoint.rollback()
        earlier = await _redemption_by_key(conn, code, idempotency_key or "")
        if earlier is None:
            raise
        return _replayed(earlier, who)
    await savepoint.commit()
    # Decided here, the one place that knows the use was taken and not replayed; counted
    # once the caller's transaction has committed.
    after_commit(conn, metrics.PROMOCODES_REDEEMED.inc)
    return replace(redemption, id=redemption_id)


def redeemed_payload(redemption: Redemption) -> dict[str, Any]:
    """The ``promocode.redeemed`` event's payload (``_RECORD_REDEMPTION`` builds it in SQL)."""
    return {
        "redemption_id": redemption.id,
        "code": redemption.code,
        "customer": redemption.customer,
        "uses_left": redemption.usage_count,
        "redeemed_at": redemption.redeemed_at,
    }


def rolled_back_payload(redemption: Redemption) -> dict[str, Any]:
    """The ``promocode.redeem_rolled_back`` event's payload: the redemption, undone."""
    return {
        **redeemed_payload(redemption),
        "rolled_back_at": redemption.rolled_back_at,
        "use_given_back": redemption.use_given_back,
    }


# PostgreSQL: the redemption and its event (when a subscription wants it) in one statement.
_REDEMPTION_EVENTS = emitting(
    PROMOCODE_REDEEMED,
    rows="redeemed",
    payload="json_build_object('redemption_id', redeemed.id, 'code', CAST(:code AS text), "
    "'customer', CAST(:customer AS text), 'uses_left', CAST(:uses_left AS integer), "
    "'redeemed_at', CAST(:event_time AS text))",
    name="redemption_events",
)
_RECORD_REDEMPTION = text(
    f"""
    WITH redeemed AS (
        INSERT INTO promocode_redemptions (promocode_id, customer, idempotency_key, redeemed_at)
        VALUES (:promocode_id, :customer, :idempotency_key, :now)
        RETURNING id
    ), {_REDEMPTION_EVENTS},
    {carts.recording(rows="redeemed", use_id="redeemed.id", promocode_id=":promocode_id")}
    SELECT id FROM redeemed
    """  # noqa: S608 - the CTEs are constants
).bindparams(
    bindparam("promocode_id", type_=BigInteger()),
    bindparam("customer", type_=String()),
    bindparam("idempotency_key", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("code", type_=Text()),
    bindparam("uses_left", type_=Integer()),
    bindparam("event_time", type_=String()),
    bindparam("skus", type_=ARRAY(Text())),
)


def next_use_id() -> Any:
    """SQLite: the id of a new redemption or hold, above both tables' (one writer at a time).

    A hold keeps its id when it becomes a redemption, so the two share their ids; PostgreSQL
    draws both from the redemptions' sequence.
    """
    return literal_column(
        "(SELECT max(coalesce((SELECT max(id) FROM promocode_redemptions), 0), "
        "coalesce((SELECT max(id) FROM promocode_holds), 0)) + 1)"
    )


async def _record_redemption(
    conn: AsyncConnection, redemption: Redemption, *, promocode_id: int, skus: Sequence[str] | None
) -> int:
    """Insert the redemption with its cart (and its event, when wanted); its id."""
    if conn.dialect.name == "postgresql":
        recorded = await conn.execute(
            _RECORD_REDEMPTION,
            {
                "promocode_id": promocode_id,
                "customer": redemption.customer,
                "idempotency_key": redemption.idempotency_key,
                "now": redemption.redeemed_at,
                "code": redemption.code,
                "uses_left": redemption.usage_count,
                "event_time": event_time(redemption.redeemed_at),
                "skus": carts.skus_param(skus),
            },
        )
        redemption_id: int = recorded.scalar_one()
        return redemption_id
    redemption_id = (
        await conn.execute(
            redemptions.insert()
            .values(
                id=next_use_id(),
                promocode_id=promocode_id,
                customer=redemption.customer,
                idempotency_key=redemption.idempotency_key,
                redeemed_at=redemption.redeemed_at,
            )
            .returning(redemptions.c.id)
        )
    ).scalar_one()
    await carts.record_cart(conn, use_id=redemption_id, promocode_id=promocode_id, skus=skus)
    recorded_redemption = replace(redemption, id=redemption_id)
    await emit_events(
        conn,
        PROMOCODE_REDEEMED,
        [redeemed_payload(recorded_redemption)],
        now=redemption.redeemed_at,
    )
    return redemption_id


async def end_use(conn: AsyncConnection, *, redemption_id: int, now: datetime) -> bool | None:
    """Mark the redemption cancelled at ``now`` and give its use back when the code's
    ``reusable_after_cancel`` says so (whether it did); None if it was cancelled before.

    The one conditional UPDATE that ends a use: a rollback and a return that leaves nothing
    kept (``returns``) race through it, so the use comes back at most once.
    """
    undone = (
        await conn.execute(
            update(redemptions)
            .where(redemptions.c.id == redemption_id, redemptions.c.rolled_back_at.is_(None))
            .values(rolled_back_at=now)
            .returning(redemptions.c.promocode_id)
        )
    ).first()
    if undone is None:
        return None
    # The use comes back when the code's policy (its own, else its generation's) says so.
    policy = func.coalesce(
        promocodes.c.reusable_after_cancel,
        select(generations.c.reusable_after_cancel)
        .where(generations.c.id == promocodes.c.generation_id)
        .scalar_subquery(),
    )
    given = await conn.execute(
        update(promocodes)
        .where(promocodes.c.id == undone.promocode_id, policy.is_(True))
        .values(usage_count=promocodes.c.usage_count + 1)
    )
    return given.rowcount == 1


async def rollback(conn: AsyncConnection, *, redemption_id: int, now: datetime) -> Redemption:
    """Cancel a redemption, once (a second rollback is refused): its use comes back to its
    code when the code's ``reusable_after_cancel`` says so (``use_given_back``)."""
    given = await end_use(conn, redemption_id=redemption_id, now=now)
    if given is None:
        exists_ = (
            await conn.execute(select(redemptions.c.id).where(redemptions.c.id == redemption_id))
        ).first()
        if exists_ is None:
            raise RedemptionNotFound(f"redemption {redemption_id} does not exist")
        raise RedemptionRolledBack(f"redemption {redemption_id} was already rolled back")
    undone_redemption = replace(await get_redemption(conn, redemption_id), use_given_back=given)
    await emit_events(
        conn, PROMOCODE_REDEEM_ROLLED_BACK, [rolled_back_payload(undone_redemption)], now=now
    )
    return undone_redemption


async def redemptions_after(
    conn: AsyncConnection,
    *,
    filters: PromocodeFilter,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None,
    limit: int,
) -> list[Redemption]:
    """Up to ``limit`` redemptions of the filtered promo codes, made from ``since`` (inclusive)
    until ``until`` (exclusive), with an id above ``after``, in id order (the order they were
    made); rolled-back ones too. ``usage_count`` is the code's uses left now."""
    query = (
        select(*_REDEMPTION_COLUMNS)
        .select_from(_REDEMPTIONS.join(generations, promocodes.c.generation_id == generations.c.id))
        .where(*_conditions(filters))
        .order_by(redemptions.c.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(redemptions.c.redeemed_at >= since)
    if until is not None:
        query = query.where(redemptions.c.redeemed_at < until)
    if after is not None:
        query = query.where(redemptions.c.id > after)
    return [Redemption(*row) for row in await conn.execute(query)]
