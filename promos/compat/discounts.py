"""The discount generator's API (seed 002), exactly at its paths and with its bodies.

``generate`` adds codes to a brand's batch (a brand is a code-pool client); ``get_code``
hands a brand user one code of the brand, the same one every time. ``get_code`` is public
but authenticated by the user's secret in its path: that path is never logged as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from promos.audit import service as audit
from promos.brands import service as brands
from promos.errors import PromosError
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorShape, answer_failure, headers_for, status_for
from promos.http.ratelimit import client_key
from promos.http.responses import JSON
from promos.http.routes import ApiErrors, DocumentedRoute
from promos.http.scopes import body as scope_body
from promos.http.scopes import needs
from promos.validation import BELOW_2_63, BrandId, Lookup

PREFIX = "/discounts/api/v1.0"
# Anywhere in a text (a path, a URL, a log message, a traceback): the secret segment ends at
# the next slash, query, fragment, quote or space.
_GET_CODE = re.compile(rf"({re.escape(PREFIX)}/get_code/[^/\s]*/)[^/\s?#'\"]+")


def redact(text: str) -> str:
    """The text with every ``get_code`` user secret replaced by ``***``: safe to log."""
    return _GET_CODE.sub(r"\1***", text)


class Envelope(BaseModel):
    """The seed's one response shape, for success and (here) failure alike."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"code": "201", "data": "X7K2-9QPL", "message": "", "status": "success"}]
        },
        use_attribute_docstrings=True,
    )

    code: Annotated[str, Field(description='"201" on success; the HTTP status on failure')]
    data: str
    """The code, on success of get_code; else empty."""
    message: str
    """What happened, for a person."""
    status: Literal["success", "error"]
    """Success or error."""


def error_body(status: int, exc: PromosError) -> dict[str, str]:
    return {"code": str(status), "data": "", "message": exc.message, "status": "error"}


class DiscountsRoute(DocumentedRoute):
    """Errors in the seed's envelope; unexpected ones logged (``log_unhandled``) as a 500."""

    api = ApiErrors(Envelope, status_for)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure answers in the envelope
                status, error = answer_failure(request.scope, exc)
                return JSON(
                    error_body(status, error), status_code=status, headers=headers_for(error)
                )

        return handle


router = APIRouter(
    prefix=PREFIX,
    tags=["Discount generator (compat)"],
    route_class=DiscountsRoute,
)


class DiscountsGenerateIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"brand_id": 7, "number_of_codes": 100}]},
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    brand_id: Annotated[int, Field(ge=0, lt=BELOW_2_63)]
    """The brand."""
    number_of_codes: Annotated[int, Field(ge=1, le=brands.MAX_CODES_PER_REQUEST)]
    """How many codes to add."""


@router.post("/generate", dependencies=[needs("brands", "manage", at=scope_body("brand_id"))])
async def generate(
    body: DiscountsGenerateIn, state: State, principal: CurrentPrincipal
) -> Envelope:
    """Generate ``number_of_codes`` new codes for the brand (needs a credential)."""
    now = state.clock()
    async with state.database.begin() as conn:
        batch = await brands.generate_for_brand(
            conn, brand_id=body.brand_id, count=body.number_of_codes, now=now
        )
        await audit.record(
            conn,
            actor=principal,
            action="brand.generate",
            target_type="brand",
            target_id=body.brand_id,
            after={"batch_id": batch.id, "added": body.number_of_codes},
            at=now,
        )
    return Envelope(
        code="201",
        data="",
        message="System generated discount codes successfully",
        status="success",
    )


# Looked up only: a user id or secret nobody could have been given finds nobody (401).
Segment = Annotated[Lookup, Path()]


@router.get(
    "/get_code/{user_id}/{user_secret}/{brand_id}",
    responses={
        401: {"model": Envelope, "description": "unknown user, or a wrong secret"},
        404: {"model": Envelope, "description": "the brand has no codes"},
        409: {"model": Envelope, "description": "the brand has no codes left"},
        429: {"model": Envelope, "description": "too many wrong secrets"},
    },
)
async def get_code(
    request: Request,
    user_id: Segment,
    user_secret: Segment,
    brand_id: Annotated[BrandId, Path()],
    state: State,
) -> Envelope:
    """One code of the brand for the user (the same code if asked again).

    A wrong secret is a failed sign-in: rate limited per client and per user id alike.
    """
    attempt = state.limits.sign_in_attempt(
        client=client_key(request.scope), login="brand-user:" + user_id
    )
    async with attempt, state.database.begin() as conn:
        await brands.verify_brand_user(conn, user_id=user_id, secret=user_secret)
        batch = await brands.brand_batch(conn, brand_id)
    issued = await state.issuer.issue(brands.issue_request(batch, user_id))
    return Envelope(code="201", data=issued.code, message="", status="success")


def envelope_body(exc: PromosError) -> dict[str, str]:
    """The envelope of an error answered before any route runs (a body over the limit)."""
    return error_body(status_for(exc), exc)


ERROR_SHAPES: dict[str, ErrorShape] = {
    route.path: envelope_body for route in router.routes if isinstance(route, APIRoute)
}
