"""What can go wrong with webhook subscriptions and deliveries."""

from __future__ import annotations

from promos.errors import Conflict, NotFound


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class SubscriptionInactive(Conflict):
    code = "subscription_inactive"
