"""The referral program API (seed 003, a Flask app), exactly at its paths, with and without
the trailing slash (both are registered: no redirect), taking JSON bodies or form fields.

Errors are ``{"error": "<message>"}`` with the status of the domain error. Decisions where
the seed is silent are in docs/compatible/referral-program.md.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Path, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile

from promos.errors import InvalidInput, PromosError
from promos.http import openapi
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorShape, headers_for, invalid_input, status_for
from promos.http.responses import JSON
from promos.http.routes import ApiErrors, error_route_class
from promos.http.scopes import Values, listed_ids, needs
from promos.http.scopes import body as scope_body
from promos.http.scopes import path as scope_path
from promos.referrals import changes, service
from promos.referrals import router as referrals
from promos.referrals.errors import ProgramNotFound
from promos.referrals.schemas import MoneyIn, MoneyOut, UserHash
from promos.validation import MAX_NAME_LENGTH, PRINTABLE_NO_SPACE, STORABLE, Id, Name, PathId

T = TypeVar("T", bound=BaseModel)


class ReferralError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "user bob was referred already"}]},
        use_attribute_docstrings=True,
    )

    error: str
    """What went wrong, for a person."""


def referral_body(exc: PromosError) -> dict[str, str]:
    return {"error": exc.message}


def referral_error(status_code: int, exc: PromosError) -> Response:
    return JSON(referral_body(exc), status_code=status_code, headers=headers_for(exc))


router = APIRouter(
    tags=["Referral program (compat)"],
    route_class=error_route_class(referral_error, ApiErrors(ReferralError, status_for)),
)


# --- bodies ----------------------------------------------------------------------------------


class Params(BaseModel):
    """The seed's parameters, from JSON or form fields; what it does not know is ignored."""

    model_config = ConfigDict(extra="ignore")


class ProgramIn(Params):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Friends", "credit_value": 10, "target_value": 100}]
        },
        use_attribute_docstrings=True,
    )

    name: Name
    """The program's name."""
    credit_value: MoneyIn
    """What a new user is credited on sign-up."""
    target_value: Annotated[MoneyIn, Field(gt=0)]
    """What the new user must pay in all for the referrer's reward."""


class ProgramChange(Params):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"target_value": 150}]}, use_attribute_docstrings=True
    )

    name: Name | None = None
    """A new name."""
    credit_value: MoneyIn | None = None
    """A new sign-up credit."""
    target_value: Annotated[MoneyIn | None, Field(gt=0)] = None
    """A new target."""


class RegisterIn(Params):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": 1}
            ]
        }
    )

    user_indicator: Annotated[UserHash, Field(description="the referrer")]
    user_indicated: Annotated[UserHash, Field(description="the new user, who was referred")]
    referral_program_id: Annotated[Id | None, Field(description="default: the oldest program")] = (
        None
    )

    @field_validator("referral_program_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class InvoiceIn(Params):
    model_config = ConfigDict(json_schema_extra={"examples": [{"total_amount_paid": 120.5}]})

    total_amount_paid: Annotated[MoneyIn, Field(description="the user's running total")]


# Checked address by address (service.parse_emails); here, only that it can be read at all.
EmailList = Annotated[str, Field(pattern=STORABLE)]


class EmailsIn(Params):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"emails": "bob@example.com,carol@example.com"}]}
    )

    emails: Annotated[
        EmailList | list[EmailList],
        Field(description="e-mail addresses separated by commas (or a list)"),
    ]

    def addresses(self) -> list[str]:
        raw = self.emails if isinstance(self.emails, str) else ",".join(self.emails)
        return service.parse_emails(raw)


class EmailVerificationIn(EmailsIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"emails": "bob@example.com", "user_indicated": "bob"}],
        },
        use_attribute_docstrings=True,
    )

    user_indicated: UserHash | None = None
    """The new user whose addresses these are: each indicated one is verified for them (one
    user per address, never the referrer's own). Optional: without it, nothing is bound."""

    @field_validator("user_indicated", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class EmailIndicationIn(EmailsIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"user_indicator": "alice", "emails": "bob@example.com,carol@example.com"}]
        },
        use_attribute_docstrings=True,
    )

    user_indicator: UserHash
    """Who invites them (the referrer)."""


class ReferralProgramOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": 1, "name": "Friends", "credit_value": 10, "target_value": 100}]
        },
        use_attribute_docstrings=True,
        from_attributes=True,
    )

    id: int
    """The program's id."""
    name: str
    """The program's name."""
    credit_value: MoneyOut
    """The sign-up credit."""
    target_value: MoneyOut
    """The target, and the referrer's reward."""


class RegisterOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    user_indicated: str
    """The new user."""
    user_indicator: str
    """Who referred them."""
    referral_program: ReferralProgramOut
    """The program."""
    credit_value: MoneyOut
    """The new user's sign-up credit."""
    total_amount_paid: MoneyOut
    """What the new user has paid so far."""
    created_at: datetime
    """When."""


class InvoiceOut(BaseModel):
    acquired_credit: Annotated[
        MoneyOut, Field(description="the referrer's reward if this invoice reached the target")
    ]


class ReferralStatementOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    potencial_credit: Annotated[
        MoneyOut,
        Field(
            description="rewards not granted yet: targets not reached, or held (pending);"
            " spelled as the seed spells it"
        ),
    ]
    acquired_credit: MoneyOut
    """Rewards granted (a held one once its hold is over), less those clawed back."""
    signup_credit: MoneyOut
    """The user's own sign-up credit."""
    referral_program: ReferralProgramOut
    """The program."""


class EmailIndicationOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    user_indicator: str
    """Who invited them."""
    emails: list[str]
    """The addresses invited now."""
    already_indicated: list[str]
    """The addresses invited before (not again)."""


# --- reading JSON or form fields -------------------------------------------------------------


async def params(request: Request, model: type[T]) -> T:
    """The request's parameters: a JSON object, or form fields (urlencoded or multipart)."""
    content_type = request.headers.get("content-type", "").lower()
    data: dict[str, Any] = {}
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise InvalidInput(f"{key}: a form field, not a file, is expected")
            data[key] = value
    else:
        body = await request.body()
        if body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise InvalidInput(
                    "the body must be a JSON object or form fields (application/"
                    "x-www-form-urlencoded)"
                ) from None
            if not isinstance(parsed, dict):
                raise InvalidInput("the body must be a JSON object")
            data = parsed
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc.errors()) from None


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI: the body is read by ``params``, as JSON or as form fields."""
    schema = openapi.body_schema(model)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


Endpoint = Callable[..., Coroutine[Any, Any, Any]]


def route(method: str, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """Serve ``path`` with and without its trailing slash (the seed's clients use both)."""
    other = path.rstrip("/") if path.endswith("/") else path + "/"

    def register(endpoint: Endpoint) -> Endpoint:
        for served in (path, other):
            router.add_api_route(
                served,
                endpoint,
                methods=[method],
                include_in_schema=served == path,
                **options,
            )
        return endpoint

    return register


def _unknown_program(values: Values) -> ProgramNotFound:
    found = values.path.get("program_id") or values.body.get("referral_program_id")
    return ProgramNotFound(f"referral program {found} does not exist")


PROGRAM = scope_path("program_id", unknown=_unknown_program)

UserHashPath = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE_NO_SPACE)
]


# --- programs --------------------------------------------------------------------------------


@route(
    "POST",
    "/program/",
    dependencies=[needs("referrals", "manage")],
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_doc(ProgramIn),
)
async def create_program(
    request: Request, state: State, principal: CurrentPrincipal
) -> ReferralProgramOut:
    """A new referral program: name, credit_value (the new user's), target_value."""
    body = await params(request, ProgramIn)
    async with state.database.begin() as conn:
        program = await changes.create_program(
            conn,
            actor=principal,
            name=body.name,
            credit_value=body.credit_value,
            target_value=body.target_value,
            now=state.clock(),
        )
    return ReferralProgramOut.model_validate(program)


@route("GET", "/program/", dependencies=[needs("referrals", "read", listed=True)])
async def list_programs(state: State, principal: CurrentPrincipal) -> list[ReferralProgramOut]:
    """Every referral program, oldest first (for a key scoped to some programs, those)."""
    listed = listed_ids(principal, "referrals", "read")
    async with state.database.begin() as conn:
        found = await service.list_programs(conn)
    return [
        ReferralProgramOut.model_validate(p) for p in found if listed is None or str(p.id) in listed
    ]


@route(
    "GET",
    "/program/{program_id}/",
    dependencies=[needs("referrals", "read", at=PROGRAM)],
    responses={404: {"model": ReferralError}},
)
async def get_program(program_id: PathId, state: State, _: CurrentPrincipal) -> ReferralProgramOut:
    async with state.database.begin() as conn:
        return ReferralProgramOut.model_validate(await service.get_program(conn, program_id))


@route(
    "PUT",
    "/program/{program_id}/",
    dependencies=[needs("referrals", "manage", at=PROGRAM)],
    responses={404: {"model": ReferralError}},
    openapi_extra=body_doc(ProgramChange),
)
async def update_program(
    program_id: PathId, request: Request, state: State, principal: CurrentPrincipal
) -> ReferralProgramOut:
    """Change the fields given; referrals already made keep their terms."""
    body = await params(request, ProgramChange)
    async with state.database.begin() as conn:
        program = await changes.update_program(
            conn,
            program_id,
            actor=principal,
            name=body.name,
            credit_value=body.credit_value,
            target_value=body.target_value,
            now=state.clock(),
        )
    return ReferralProgramOut.model_validate(program)


@route(
    "DELETE",
    "/program/{program_id}/",
    dependencies=[needs("referrals", "manage", at=PROGRAM)],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ReferralError}, 409: {"model": ReferralError}},
)
async def delete_program(program_id: PathId, state: State, principal: CurrentPrincipal) -> Response:
    """Delete a program that has no referrals (409 otherwise)."""
    async with state.database.begin() as conn:
        await changes.delete_program(conn, program_id, actor=principal, now=state.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- referrals -------------------------------------------------------------------------------


@route(
    "POST",
    "/register/",
    dependencies=[
        needs("referrals", "use", at=scope_body("referral_program_id", unknown=_unknown_program))
    ],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": RegisterOut, "description": "the same registration again"},
        404: {"model": ReferralError},
        409: {"model": ReferralError, "description": "the user was referred already"},
    },
    openapi_extra=body_doc(RegisterIn),
)
async def register(
    request: Request, response: Response, state: State, _: CurrentPrincipal
) -> RegisterOut:
    """``user_indicator`` (the referrer) brought in ``user_indicated``, who gets the credit."""
    body = await params(request, RegisterIn)
    registration = await referrals.register_referral(
        state,
        referrer=body.user_indicator,
        referred=body.user_indicated,
        program_id=body.referral_program_id,
    )
    if not registration.created:
        response.status_code = status.HTTP_200_OK
    referral = registration.referral
    return RegisterOut(
        user_indicated=referral.referred,
        user_indicator=referral.referrer,
        referral_program=ReferralProgramOut.model_validate(referral.program),
        credit_value=referral.credit_value,
        total_amount_paid=referral.total_amount_paid,
        created_at=referral.created_at,
    )


@route(
    "PUT",
    "/invoice/user/{user_hash}/",
    dependencies=[needs("referrals", "use")],
    responses={404: {"model": ReferralError}},
    openapi_extra=body_doc(InvoiceIn),
)
async def invoice(
    user_hash: UserHashPath, request: Request, state: State, _: CurrentPrincipal
) -> InvoiceOut:
    """The user's running total paid; reaching the target rewards the referrer, once."""
    body = await params(request, InvoiceIn)
    payment = await referrals.record_total_paid(
        state, user_hash=user_hash, total_amount_paid=body.total_amount_paid
    )
    return InvoiceOut(acquired_credit=payment.acquired_credit)


@route(
    "GET",
    "/statement/{user_hash}/",
    dependencies=[needs("referrals", "read")],
    responses={404: {"model": ReferralError}},
)
async def statement(
    user_hash: UserHashPath, state: State, _: CurrentPrincipal
) -> ReferralStatementOut:
    """``potencial_credit``: rewards not granted yet (targets not reached, or held)."""
    async with state.database.begin() as conn:
        found = await service.statement(conn, user_hash, now=state.clock())
    return ReferralStatementOut(
        potencial_credit=found.potential_credit,
        acquired_credit=found.acquired_credit,
        signup_credit=found.signup_credit,
        referral_program=ReferralProgramOut.model_validate(found.program),
    )


# --- e-mails ---------------------------------------------------------------------------------


@route(
    "POST",
    "/emailindication",
    dependencies=[needs("referrals", "use")],
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {
            "model": ReferralError,
            "description": "an address that is not an e-mail,"
            " or one verified as the referrer's own",
        }
    },
    openapi_extra=body_doc(EmailIndicationIn),
)
async def email_indication(
    request: Request, state: State, _: CurrentPrincipal
) -> EmailIndicationOut:
    """Record the addresses ``user_indicator`` invited; one referrer per address."""
    body = await params(request, EmailIndicationIn)
    emails = body.addresses()
    async with state.database.begin() as conn:
        indication = await service.indicate_emails(
            conn, referrer=body.user_indicator, emails=emails, now=state.clock()
        )
    return EmailIndicationOut(
        user_indicator=indication.referrer,
        emails=indication.saved,
        already_indicated=indication.taken,
    )


@route(
    "POST",
    "/emailverification",
    dependencies=[needs("referrals", "read")],
    responses={
        409: {"model": ReferralError, "description": "an address verified for another user"},
        422: {
            "model": ReferralError,
            "description": "an address that is not an e-mail, or one user_indicated invited",
        },
    },
    openapi_extra=body_doc(EmailVerificationIn),
)
async def email_verification(
    request: Request, state: State, _: CurrentPrincipal
) -> list[dict[str, str]]:
    """``[{"<email>": "<user_indicator>"}]`` for each address that was indicated."""
    body = await params(request, EmailVerificationIn)
    emails = body.addresses()
    async with state.database.begin() as conn:
        found = await service.verify_emails(
            conn, emails, now=state.clock(), user=body.user_indicated
        )
    return [{email: referrer} for email, referrer in found]


# What answers before any route runs (a body over the limit, a 500) answers in this shape too.
ERROR_SHAPES: dict[str, ErrorShape] = {
    route.path: referral_body for route in router.routes if isinstance(route, APIRoute)
}
