"""Request and response bodies of the webhook API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from promos.events.outbox import ALL_EVENTS
from promos.events.signing import check_secret
from promos.events.types import EVENT_TYPES
from promos.http.pagination import PageOut
from promos.validation import PRINTABLE

EventType = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
WebhookSecret = Annotated[
    str, Field(min_length=16, max_length=255, pattern=PRINTABLE), AfterValidator(check_secret)
]
_EVENTS_DESCRIPTION = f'event types ({", ".join(EVENT_TYPES)}), or ["*"] for all'


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/promos",
                    "events": ["code.issued", "promocode.redeemed"],
                    "secret": "whsec_7d2f4c1a9b8e6d5c",
                }
            ]
        },
        extra="forbid",
    )

    url: Annotated[AnyHttpUrl, Field(description="where events are POSTed, as JSON")]
    events: Annotated[
        list[EventType],
        Field(min_length=1, max_length=100, description=_EVENTS_DESCRIPTION),
    ]
    secret: Annotated[
        WebhookSecret | None,
        Field(
            description=(
                "signs every delivery (Standard Webhooks' webhook-signature, and "
                "Promos-Signature); never shown again. Left out: Promos makes one "
                "(whsec_<base64 of 32 bytes>) and shows it once, in this answer"
            ),
        ),
    ] = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        return known_events(events)


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": ["code.issued"]}, {"paused": True}]},
        extra="forbid",
    )

    events: Annotated[
        list[EventType] | None,
        Field(min_length=1, max_length=100, description=f"new {_EVENTS_DESCRIPTION}"),
    ] = None
    paused: Annotated[
        bool | None,
        Field(
            description=(
                "true pauses it: no events are sent to it (none are kept for it meanwhile) and "
                "its pending deliveries are cancelled; false resumes it"
            )
        ),
    ] = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return None if events is None else known_events(events)


def known_events(events: list[str]) -> list[str]:
    """``events`` if each is a known type or ``*``: a misspelt type would never fire, so it
    is refused, with the types there are."""
    unknown = sorted(set(events) - set(EVENT_TYPES) - {ALL_EVENTS})
    if unknown:
        known = ", ".join([*EVENT_TYPES, ALL_EVENTS])
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}: known are {known}")
    return events


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SubscriptionOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The subscription's id."""
    url: str
    """Where events are sent."""
    events: list[str] = Field(validation_alias="event_types")
    """The event types sent."""
    active: bool
    """Whether it receives events: false while paused, and once deleted (its log stays)."""
    status: Literal["active", "paused", "deleted"]
    """Active, paused (it can be resumed) or deleted."""
    created_at: datetime
    """When it was made."""


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(
        default=None,
        description="the secret Promos made, when none was given: shown this once",
    )


class AttemptOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    number: int
    """1 for the first attempt, and so on."""
    attempted_at: datetime
    """When it was made."""
    status_code: int | None
    """The receiver's HTTP status; null if none came."""
    error: str | None
    """Why it failed, if it did."""
    duration_ms: int
    """How long it took."""
    response_excerpt: str | None
    """The start of the receiver's answer (500 characters at most); null if it had none."""


class DeliveryOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The delivery's id."""
    event_id: int
    """The event it carries."""
    event_type: str
    """E.g. code.issued."""
    kind: Literal["callback", "webhook"]
    """Callback (the referral billing callback) or webhook."""
    subscription_id: int | None
    """The subscription it is for; null for callbacks."""
    url: str
    """Where it is sent."""
    status: Literal["pending", "delivered", "failed", "cancelled"]
    """Pending, delivered, failed (gave up) or cancelled."""
    attempts: int
    """How many attempts were made."""
    next_attempt_at: datetime
    """When the next attempt is due."""
    last_status_code: int | None
    """The receiver's last HTTP status."""
    last_error: str | None
    """Why the last attempt failed."""
    replay_of: int | None
    """The delivery this one replays."""
    created_at: datetime
    """When it was made."""
    delivered_at: datetime | None
    """When the receiver took it."""


class DeliveryDetail(DeliveryOut):
    model_config = ConfigDict(use_attribute_docstrings=True)

    content_type: str
    """The body's content type."""
    body: str
    """What is sent, exactly."""
    attempt_log: list[AttemptOut]
    """Every attempt, oldest first."""


class DeliveryPage(PageOut):
    items: Annotated[list[DeliveryOut], Field(description="this page's deliveries")]


class SubscriptionPage(PageOut):
    items: Annotated[list[SubscriptionOut], Field(description="this page's subscriptions")]
