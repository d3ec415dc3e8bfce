"""Every domain's tables, imported so that ``metadata`` knows them all (for migrations)."""

from promos.audit import tables as audit_tables
from promos.auth import tables as auth_tables
from promos.brands import tables as brands_tables
from promos.catalog import tables as catalog_tables
from promos.codes import tables as codes_tables
from promos.console import tables as console_tables
from promos.db import metadata
from promos.events import tables as events_tables
from promos.offers import tables as offers_tables
from promos.promocodes import tables as promocodes_tables
from promos.referrals import tables as referrals_tables

__all__ = [
    "audit_tables",
    "auth_tables",
    "brands_tables",
    "catalog_tables",
    "codes_tables",
    "console_tables",
    "events_tables",
    "metadata",
    "offers_tables",
    "promocodes_tables",
    "referrals_tables",
]
