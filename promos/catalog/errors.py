"""What can go wrong with specials and upgrade programs."""

from __future__ import annotations

from promos.errors import InvalidInput, NotFound


class SpecialNotFound(NotFound):
    code = "special_not_found"


class UpgradeProgramNotFound(NotFound):
    code = "upgrade_program_not_found"


class InvalidOffer(InvalidInput):
    """Not exactly one of price / percentage / amount, or a window that ends before it starts."""

    code = "invalid_offer"
