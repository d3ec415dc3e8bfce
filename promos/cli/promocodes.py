"""``promos promocodes``: generate promo codes (all or nothing, with a progress bar), list,
show, delete and export them, and export their redemptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from promos.cli._output import (
    ROW_ID,
    console,
    json_option,
    output_option,
    show_list,
    show_one,
    write_export,
    wrote,
)
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.db import Database
from promos.promocodes import changes, export, service
from promos.promocodes.generate import DEFAULT_CHARSET
from promos.promocodes.schemas import GenerationOut, PromocodeOut
from promos.promocodes.service import Generated, GenerationSpec, Promocode, PromocodeFilter
from promos.settings import Settings

COLUMNS = (
    "code",
    "usage_count",
    "discount_percentage",
    "discount_amount",
    "expires_in",
    "usage_by",
    "generation_id",
)
LIST_LIMIT = 100
F = TypeVar("F", bound=Callable[..., Any])


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter("must be a number", param_hint=name) from None


# --- the list route's filters, shared by list and the exports --------------------------------

_FILTER = "promocode_filter"


def _keep(ctx: click.Context, param: click.Parameter, value: object) -> object:
    if isinstance(value, datetime):
        value = value.date()
    ctx.meta.setdefault(_FILTER, {})[param.name] = value
    return value


_DAY = click.DateTime(["%Y-%m-%d"])


def _filter_option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    return click.option(*decls, callback=_keep, expose_value=False, **attrs)


_FILTER_OPTIONS = (
    _filter_option("--usage-by", metavar="EMAIL", help="Bound to this e-mail"),
    _filter_option("--kind", type=click.Choice(["percentage", "amount"]), help="Discount kind"),
    _filter_option("--expires-before", type=_DAY, help="Last day before YYYY-MM-DD"),
    _filter_option("--expires-after", type=_DAY, help="Last day after YYYY-MM-DD, or never"),
    _filter_option("--search", metavar="TEXT", help="Part of the code (any case)"),
    _filter_option("--generation", "generation_id", type=ROW_ID, help="Of this generation only"),
)


def filter_options(command: F) -> F:
    """The filters of ``GET /v1/promocodes`` as options; ``chosen_filter()`` reads them."""
    for option in reversed(_FILTER_OPTIONS):
        command = option(command)
    return command


def chosen_filter() -> PromocodeFilter:
    """The filter the command line's filter options make."""
    given: dict[str, Any] = click.get_current_context().meta.get(_FILTER, {})
    return PromocodeFilter(
        usage_by=given.get("usage_by"),
        kind=given.get("kind"),
        expires_before=given.get("expires_before"),
        expires_after=given.get("expires_after"),
        search=given.get("search"),
        generation_id=given.get("generation_id"),
    )


@click.group()
def promocodes() -> None:
    """Manage promo codes.

    Changes are in the audit log, made by cli:<your uid>."""


@promocodes.command("generate")
@click.option("--pattern", required=True, help="# = one drawn character, e.g. ####-####-####")
@click.option("--count", type=int, default=1, show_default=True, help="How many codes")
@click.option("--charset", default=DEFAULT_CHARSET, show_default=True)
@click.option("--prefix", default="")
@click.option("--postfix", default="")
@click.option("--percentage", "percentage", help="Percentage off, e.g. 20")
@click.option("--amount", "amount", help="Amount off, e.g. 10.50")
@click.option("--uses", type=int, default=1, show_default=True, help="Uses per code")
@click.option("--expires", type=_DAY, help="Last day (UTC) it works")
@click.option("--product", "products", multiple=True, help="A SKU it applies to (repeatable)")
@click.option("--usage-by", help="The one e-mail allowed to use the codes")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Write every code made to FILE as CSV (as `promocodes export` does; - = stdout)",
)
@json_option
def generate(  # noqa: PLR0917 - one parameter per option
    pattern: str,
    count: int,
    charset: str,
    prefix: str,
    postfix: str,
    percentage: str | None,
    amount: str | None,
    uses: int,
    expires: datetime | None,
    products: tuple[str, ...],
    usage_by: str | None,
    output: Path | None,
    *,
    as_json: bool,
) -> None:
    """Generate promo codes from a pattern.

    COUNT codes in one transaction: all of them, or none. Prints three of them, or with
    -o FILE writes them all as CSV (the columns of `export`)."""
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and as_json:
        raise click.UsageError("--json and -o - both write to standard output: choose one")
    spec = GenerationSpec(
        pattern=pattern,
        count=count,
        usage_count=uses,
        charset=charset,
        prefix=prefix,
        postfix=postfix,
        discount_percentage=_decimal(percentage, "--percentage"),
        discount_amount=_decimal(amount, "--amount"),
        expires_in=expires.date() if expires is not None else None,
        products=products,
        usage_by=usage_by,
    )
    with Progress(
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
    ) as progress:
        task = progress.add_task("generate", total=count)

        async def work(database: Database, _: Settings) -> tuple[Generated, int]:
            made = await changes.generate_apart(
                database,
                actor=cli_actor(),
                spec=spec,
                now=utc_now(),
                on_progress=lambda n: progress.update(task, completed=n),
            )
            if output is None:
                return made, 0
            # Read back once committed, in chunks, as an export reads them.
            codes = export.promocodes(database, PromocodeFilter(generation_id=made.generation.id))
            return made, await write_export(export.PROMOCODES, codes, output)

        made, written = run(work)
    generation = made.generation
    if as_json:
        show_one(GenerationOut.model_validate(generation), as_json=True)
    elif output is not None:
        where = "standard output" if to_stdout else str(output)
        click.echo(f"generation {generation.id}: {written} codes written to {where}", err=to_stdout)
    else:
        click.echo(
            f"generation {generation.id}: {generation.count} codes, e.g. "
            + ", ".join(made.codes[:3])
        )
        if generation.count > 3:  # noqa: PLR2004 - the three shown
            click.echo(
                f"all of them: promos promocodes export --generation {generation.id} -o FILE",
                err=True,
            )


@promocodes.command("list")
@filter_options
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=LIST_LIMIT,
    show_default=True,
    help="At most this many (all of them: `promocodes export`)",
)
@json_option
def list_promocodes(limit: int, *, as_json: bool) -> None:
    """List promo codes, in the order they were made.

    Filtered as GET /v1/promocodes filters; --limit of them (every one: `export`)."""
    filters = chosen_filter()

    async def work(database: Database, _: Settings) -> list[Promocode]:
        async with database.begin() as conn:
            return await service.list_promocodes(conn, filters=filters, limit=limit)

    found = run(work)
    show_list((PromocodeOut.of(p) for p in found), columns=COLUMNS, as_json=as_json)


@promocodes.command("show")
@click.argument("code")
@json_option
def show(code: str, *, as_json: bool) -> None:
    """Show a promo code: its uses left and its generation's terms."""

    async def work(database: Database, _: Settings) -> Promocode:
        async with database.begin() as conn:
            return await service.get_promocode(conn, code)

    show_one(PromocodeOut.of(run(work)), as_json=as_json)


@promocodes.command("delete")
@click.argument("code")
def delete(code: str) -> None:
    """Delete a promo code.

    It stops working at once; its redemptions go with it."""

    async def work(database: Database, _: Settings) -> None:
        async with database.begin() as conn:
            await changes.delete_promocode(conn, actor=cli_actor(), code=code, now=utc_now())

    run(work)
    click.echo(f"deleted promo code {code!r}")


@promocodes.command("export")
@filter_options
@output_option
def export_promocodes(output: Path | None) -> None:
    """Write promo codes as CSV (the filters of `list`).

    In the order they were made, with the columns code, generation_id, uses_left,
    discount_percentage, discount_amount, expires_in, products (space-separated), usage_by,
    created_at. To standard output unless -o FILE."""
    filters = chosen_filter()

    async def work(database: Database, _: Settings) -> int:
        rows = export.promocodes(database, filters)
        return await write_export(export.PROMOCODES, rows, output)

    wrote(run(work), "promo codes", output)


@promocodes.group("redemptions")
def redemptions() -> None:
    """Redemptions of promo codes."""


@redemptions.command("export")
@filter_options
@click.option("--since", type=click.DateTime(), help="Redeemed from this time (UTC) on")
@click.option("--until", type=click.DateTime(), help="Redeemed before this time (UTC)")
@output_option
def export_redemptions(since: datetime | None, until: datetime | None, output: Path | None) -> None:
    """Write redemptions as CSV (of the promo codes the filters let through).

    In the order they were made, rolled-back ones too, with the columns id, code, customer,
    idempotency_key, redeemed_at, rolled_back_at. --since and --until without a timezone
    are UTC. To standard output unless -o FILE."""
    filters = chosen_filter()

    async def work(database: Database, _: Settings) -> int:
        rows = export.redemptions(database, filters, since=_utc(since), until=_utc(until))
        return await write_export(export.REDEMPTIONS, rows, output)

    wrote(run(work), "redemptions", output)


def _utc(value: datetime | None) -> datetime | None:
    """A time given on the command line, read as UTC unless it names its zone."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
