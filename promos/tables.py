"""Every domain's tables, imported so that ``metadata`` knows them all (for migrations)."""

from promos.auth import tables as auth_tables
from promos.codes import tables as codes_tables
from promos.db import metadata

__all__ = ["auth_tables", "codes_tables", "metadata"]
