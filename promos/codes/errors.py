"""What can go wrong with code pools; each has its own stable code."""

from __future__ import annotations

from promos.errors import Conflict, Gone, InvalidInput, NotFound, RuleViolation


class BatchNotFound(NotFound):
    code = "batch_not_found"


class BatchExpired(Gone):
    code = "batch_expired"


class ClientMismatch(InvalidInput):
    code = "client_mismatch"


class PoolExhausted(Conflict):
    code = "pool_exhausted"


class CustomerLimitReached(RuleViolation):
    code = "customer_limit_reached"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class InvalidRules(InvalidInput):
    code = "invalid_rules"


class InvalidCsv(InvalidInput):
    """A CSV upload that cannot be taken; ``details`` names the row (1 = the header)."""

    code = "invalid_csv"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class HoldExpired(Gone):
    """A hold confirmed after it lapsed: its code is no longer the order's."""

    code = "hold_expired"


class HoldReleased(Conflict):
    code = "hold_released"


class HoldConfirmed(Conflict):
    """A confirmed hold's code is issued: it is the customer's for good."""

    code = "hold_confirmed"


class OrderHeldForAnotherCustomer(Conflict):
    code = "order_held_for_another_customer"
