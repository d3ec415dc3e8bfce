"""What can go wrong with promo codes; each has its own stable code."""

from __future__ import annotations

from promos.errors import Conflict, Gone, InvalidInput, NotFound, RuleViolation


class InvalidPattern(InvalidInput):
    """A pattern, charset, prefix or postfix that cannot make the codes asked for."""

    code = "invalid_pattern"


class InvalidDiscount(InvalidInput):
    code = "invalid_discount"


class InvalidPromocode(InvalidInput):
    code = "invalid_promocode"


class PatternExhausted(Conflict):
    """The pattern's space holds too few unused codes (earlier generations took them)."""

    code = "pattern_exhausted"


class PromocodeNotFound(NotFound):
    code = "promocode_not_found"


class PromocodeExpired(Gone):
    code = "promocode_expired"


class PromocodeUsedUp(Conflict):
    code = "promocode_used_up"


class PromocodeNotForCustomer(RuleViolation):
    code = "promocode_not_for_customer"


class PromocodeNotForProducts(RuleViolation):
    code = "promocode_not_for_products"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"


class RedemptionRolledBack(Conflict):
    code = "redemption_already_rolled_back"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class HoldExpired(Gone):
    """A hold confirmed after it lapsed (and no late confirm could take a use for it)."""

    code = "hold_expired"


class HoldReleased(Conflict):
    code = "hold_released"


class HoldConfirmed(Conflict):
    """A confirmed hold is a redemption: it is rolled back, not released."""

    code = "hold_confirmed"


class OrderHeldForAnotherCustomer(Conflict):
    code = "order_held_for_another_customer"


class OrderNotFound(NotFound):
    """No hold or redemption names the order."""

    code = "order_not_found"


class ProductNotInRedemption(InvalidInput):
    """A return names a product the redemption's cart did not hold."""

    code = "product_not_in_redemption"


class ProductNotInOrder(InvalidInput):
    """An order's return names no product any of its redemptions' carts held."""

    code = "product_not_in_order"
