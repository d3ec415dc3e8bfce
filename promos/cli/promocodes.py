"""``promos promocodes generate``: many promo codes at once, all or nothing, with a progress bar."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from promos.cli._run import run
from promos.clock import utc_now
from promos.db import Database
from promos.promocodes import service
from promos.promocodes.generate import DEFAULT_CHARSET
from promos.promocodes.service import Generated, GenerationSpec
from promos.settings import Settings


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter("must be a number", param_hint=name) from None


@click.group()
def promocodes() -> None:
    """Manage promo codes."""


@promocodes.command("generate")
@click.option("--pattern", required=True, help="# = one drawn character, e.g. ####-####-####")
@click.option("--count", type=int, default=1, show_default=True, help="How many codes")
@click.option("--charset", default=DEFAULT_CHARSET, show_default=True)
@click.option("--prefix", default="")
@click.option("--postfix", default="")
@click.option("--percentage", "percentage", help="Percentage off, e.g. 20")
@click.option("--amount", "amount", help="Amount off, e.g. 10.50")
@click.option("--uses", type=int, default=1, show_default=True, help="Uses per code")
@click.option("--expires", type=click.DateTime(["%Y-%m-%d"]), help="Last day (UTC) it works")
@click.option("--product", "products", multiple=True, help="A SKU it applies to (repeatable)")
@click.option("--usage-by", help="The one e-mail allowed to use the codes")
def generate(  # noqa: PLR0917 - one parameter per option
    pattern: str,
    count: int,
    charset: str,
    prefix: str,
    postfix: str,
    percentage: str | None,
    amount: str | None,
    uses: int,
    expires: object,
    products: tuple[str, ...],
    usage_by: str | None,
) -> None:
    """Generate COUNT codes from PATTERN in one transaction: all of them, or none."""
    expires_in: date | None = expires.date() if hasattr(expires, "date") else None
    spec = GenerationSpec(
        pattern=pattern,
        count=count,
        usage_count=uses,
        charset=charset,
        prefix=prefix,
        postfix=postfix,
        discount_percentage=_decimal(percentage, "--percentage"),
        discount_amount=_decimal(amount, "--amount"),
        expires_in=expires_in,
        products=products,
        usage_by=usage_by,
    )
    with Progress(
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("generate", total=count)

        async def work(database: Database, _: Settings) -> Generated:
            async with database.begin() as conn:
                return await service.generate(
                    conn,
                    spec=spec,
                    now=utc_now(),
                    on_progress=lambda n: progress.update(task, completed=n),
                )

        made = run(work)
    click.echo(
        f"generation {made.generation.id}: {made.generation.count} codes, e.g. "
        + ", ".join(made.codes[:3])
    )
