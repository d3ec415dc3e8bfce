"""Limits every API applies to what it stores: text a database can hold, numbers it can count."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

# PostgreSQL text cannot hold NUL, and no name or code needs a control character.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
PRINTABLE_NO_SPACE = r"^[^\s\x00-\x1f\x7f]+$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_NAME_LENGTH = 255
MAX_PER_CUSTOMER = 1_000_000
MAX_TIME_LIMIT_DAYS = 36_500  # a hundred years
MAX_OFFSET = 1_000_000_000

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Identifier = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE_NO_SPACE)
]


def has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None
