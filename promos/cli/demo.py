"""``promos demo``: a demo client, batch and codes, and curl commands to try them."""

from __future__ import annotations

import secrets
from uuid import UUID, uuid4

import click

from promos.auth import changes as auth_changes
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.codes import changes as codes_changes
from promos.codes import service as codes_service
from promos.codes.service import Batch, Rules
from promos.db import Database
from promos.settings import Settings

DEMO_CLIENT = UUID("217be7c8-679c-4e08-bffc-db3451bdcdbf")
DEMO_CODES = 1000


@click.command()
@click.option("--codes", "count", default=DEMO_CODES, show_default=True, help="How many codes")
def demo(count: int) -> None:
    """Create a demo batch (2 codes per customer every 30 days) and an API key to try it with."""

    async def work(database: Database, _: Settings) -> tuple[Batch, str]:
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
        return batch, key.secret

    batch, secret = run(work)
    config = Settings()
    base = f"http://{config.host}:{config.port}"
    customer = uuid4()
    click.echo(
        f"""Demo batch {batch.id} with {count} codes for client {DEMO_CLIENT}.
Its rule: 2 codes per customer every 30 days.
API key (shown once): {secret}

Start the service in another terminal (`make serve` or `promos serve`), then:

  # issue a code to a customer (Ango's API); run it three times: the third is refused
  curl -s -X POST {base}/api/v1/code/redeem -H 'Authorization: Bearer {secret}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"batchid":"{batch.id}","clientid":"{DEMO_CLIENT}","customerid":"{customer}"}}'

  # the batches, and what is left in this one
  curl -s {base}/api/v1/batches -H 'Authorization: Bearer {secret}'
  curl -s {base}/v1/batches/{batch.id}/stats -H 'Authorization: Bearer {secret}'

  # the customer's codes
  curl -s {base}/v1/customers/{customer}/codes -H 'Authorization: Bearer {secret}'
"""
    )
