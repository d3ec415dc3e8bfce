"""Request and response bodies of the webhook API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from promos.events.outbox import ALL_EVENTS
from promos.events.signing import check_secret
from promos.events.types import EVENT_TYPES

EventType = Annotated[str, Field(min_length=1, max_length=100)]
_EVENTS_DESCRIPTION = f'event types ({", ".join(EVENT_TYPES)}), or ["*"] for all'


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[AnyHttpUrl, Field(description="where events are POSTed, as JSON")]
    events: Annotated[
        list[EventType],
        Field(min_length=1, max_length=100, description=_EVENTS_DESCRIPTION),
    ]
    secret: Annotated[
        str | None,
        AfterValidator(lambda secret: secret if secret is None else check_secret(secret)),
        Field(
            min_length=16,
            max_length=255,
            pattern=r"^[^\x00-\x1f\x7f]+$",
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
        # A misspelt type would never fire: refuse it, and say which types there are.
        unknown = sorted(set(events) - set(EVENT_TYPES) - {ALL_EVENTS})
        if unknown:
            known = ", ".join([*EVENT_TYPES, ALL_EVENTS])
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}: known are {known}")
        return events


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SubscriptionOut(Out):
    id: int
    url: str
    events: list[str] = Field(validation_alias="event_types")
    active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(
        default=None,
        description="the secret Promos made, when none was given: shown this once",
    )


class AttemptOut(Out):
    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(Out):
    id: int
    event_id: int
    event_type: str
    kind: Literal["callback", "webhook"]
    subscription_id: int | None
    url: str
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    replay_of: int | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    content_type: str
    body: str
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int
