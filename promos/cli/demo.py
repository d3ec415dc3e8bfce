"""``promos demo``: a demo client, batch and codes, and curl commands to try them."""

from __future__ import annotations

import secrets
from uuid import UUID, uuid4

import click

from promos.auth import changes as auth_changes
from promos.auth import service as auth_service
from promos.cli._address import base_url
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.codes import changes as codes_changes
from promos.codes import service as codes_service
from promos.codes.service import Batch, Rules
from promos.datadir import describe
from promos.db import Database
from promos.settings import Settings

DEMO_CLIENT = UUID("217be7c8-679c-4e08-bffc-db3451bdcdbf")
DEMO_CODES = 1000
UPLOADED_CODES = 2
DEMO_USER = "demo"


@click.command()
@click.option(
    "--codes", "count", type=click.IntRange(1, 1_000_000), default=DEMO_CODES, show_default=True
)
def demo(count: int) -> None:
    """Create a demo batch (2 codes per customer every 30 days) and an API key to try it with;
    on a database without users, a console admin too."""

    async def work(database: Database, config: Settings) -> tuple[Batch, str, str | None, Settings]:
        now = utc_now()
        async with database.begin() as conn:
            batch = await codes_service.create_batch(
                conn,
                client_id=DEMO_CLIENT,
                name="Demo batch",
                rules=Rules(max_per_customer=2, time_limit_days=30),
                now=now,
            )
            rows = ((i + 2, f"DEMO-{secrets.token_hex(4).upper()}") for i in range(count))
            added = await codes_service.add_codes(conn, batch, rows)
            actor = cli_actor()
            await codes_changes.record_import(conn, actor=actor, batch=batch, added=added, now=now)
            key = await auth_changes.create_api_key(
                conn, actor=actor, name="demo", role="sales", now=now
            )
            # Only on a database nobody uses yet: an admin with a known name is a demo's
            # convenience, not something to slip into a real installation.
            password = None
            if await auth_service.count_users(conn) == 0:
                password = secrets.token_urlsafe(12)
                await auth_changes.create_user(
                    conn, actor=actor, username=DEMO_USER, password=password, role="admin", now=now
                )
        return batch, key.secret, password, config

    batch, secret, password, config = run(work)
    click.echo(instructions(batch, secret, password, config, count=count), nl=False)


def instructions(
    batch: Batch, secret: str, password: str | None, config: Settings, *, count: int
) -> str:
    """What the demo made, and curl commands that work from any folder (the CSV file to
    upload is piped in) against the host and port configured."""
    base = base_url(config.host, config.port)
    if password is None:
        console = f"Console: {base}/admin (sign in as one of this database's users)"
    else:
        console = f"Console: {base}/admin, user {DEMO_USER}, password (shown once): {password}"
    auth = f"-H 'Authorization: Bearer {secret}'"
    customer = uuid4()
    # Made now, so that they are not in the database yet (a code is unique per client).
    csv = "\\n".join(
        [
            "client_id,code",
            *(
                f"{DEMO_CLIENT},SPRING-{secrets.token_hex(4).upper()}"
                for _ in range(UPLOADED_CODES)
            ),
        ]
    )
    return f"""\
Demo batch {batch.id} of client {DEMO_CLIENT}:
{count} codes, 2 per customer every 30 days.
API key (shown once): {secret}
Database: {describe(config.database_url)}
{console}

With the service running (`make serve` or `promos serve`), try these in any folder:

  # issue a code to a customer (Ango's API); run it three times: the third is refused
  curl -s {base}/api/v1/code/redeem \\
    {auth} -H 'Content-Type: application/json' \\
    -d '{{"batchid":"{batch.id}","clientid":"{DEMO_CLIENT}","customerid":"{customer}"}}'

  # upload a CSV file of codes as a new batch
  printf '{csv}\\n' |
    curl -s {base}/api/v1/codes/upload \\
      {auth} -F batch_name=Spring -F 'file=@-;filename=codes.csv'

  # the batches, what is left in the demo batch, and the customer's codes
  curl -s {base}/api/v1/batches {auth}
  curl -s {base}/v1/batches/{batch.id}/stats {auth}
  curl -s {base}/v1/customers/{customer}/codes {auth}
"""
