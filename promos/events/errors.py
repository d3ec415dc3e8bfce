"""What can go wrong with webhook subscriptions and deliveries."""

from __future__ import annotations

from promos.errors import Conflict, InvalidInput, NotFound


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class SubscriptionInactive(Conflict):
    code = "subscription_inactive"


class DestinationRefused(InvalidInput):
    """A webhook's host is, or resolves to, an address webhooks may not go to."""

    code = "webhook_destination_refused"
