"""What can go wrong with games and offers; each has its own stable code."""

from __future__ import annotations

from promos.errors import BadRequest, InvalidInput, NotFound


class GameNotFound(NotFound):
    code = "game_not_found"


class OfferNotFound(NotFound):
    code = "offer_not_found"


class InvalidGame(InvalidInput):
    code = "invalid_game"


class InvalidOffer(InvalidInput):
    code = "invalid_offer"


class BadParameter(BadRequest):
    """A player route's query string lacks or garbles a parameter (the seed answers 400)."""

    code = "bad_parameter"
