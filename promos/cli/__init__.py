"""The ``promos`` command: one group, one module per command."""

from __future__ import annotations

import click

from promos import __version__
from promos.cli.api_keys import api_keys
from promos.cli.batches import batches
from promos.cli.brand_users import brand_users
from promos.cli.citus import citus
from promos.cli.codes import codes
from promos.cli.demo import demo
from promos.cli.migrate import migrate
from promos.cli.promocodes import promocodes
from promos.cli.serve import serve
from promos.cli.users import users
from promos.cli.webhooks import webhooks
from promos.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="promos")
def main() -> None:
    """Promos: code pools, promo codes, referrals and in-game offers.

    Settings come from PROMOS_* environment variables (see docs/settings.md).
    """


main.add_command(serve)
main.add_command(migrate)
main.add_command(users)
main.add_command(api_keys)
main.add_command(batches)
main.add_command(codes)
main.add_command(demo)
main.add_command(promocodes)
main.add_command(brand_users)
main.add_command(worker)
main.add_command(webhooks)
main.add_command(citus)
