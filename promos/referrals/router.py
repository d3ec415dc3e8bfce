"""The native referral API under ``/v1``: programs, referrals, payments, statements, credits."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status

from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.scopes import Values, body, listed_ids, needs, path
from promos.referrals import changes, service
from promos.referrals.errors import ProgramNotFound
from promos.referrals.schemas import (
    CreditOut,
    CreditPage,
    PaymentIn,
    PaymentOut,
    ProgramCreate,
    ProgramOut,
    ProgramPage,
    ProgramUpdate,
    ReferralCreate,
    ReferralOut,
    RefundIn,
    RefundOut,
    StatementOut,
)
from promos.state import AppState
from promos.validation import MAX_NAME_LENGTH, PRINTABLE_NO_SPACE, PathId


def _unknown_program(values: Values) -> ProgramNotFound:
    # What the service answers for a program that does not exist.
    found = values.path.get("program_id") or values.body.get("program_id")
    return ProgramNotFound(f"referral program {found} does not exist")


PROGRAM = path("program_id", unknown=_unknown_program)

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["referrals"],
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

UserHashPath = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE_NO_SPACE)
]


def wake_dispatcher(state: AppState) -> None:
    """Deliver what a committed change emitted now, not at the next poll."""
    if state.dispatcher is not None:
        state.dispatcher.wake()


async def register_referral(
    state: AppState, *, referrer: str, referred: str, program_id: int | None
) -> service.Registration:
    """A referred sign-up, committed; its credit callback sent now (native and compat API)."""
    async with state.database.begin() as conn:
        registration = await service.register(
            conn,
            referrer=referrer,
            referred=referred,
            program_id=program_id,
            now=state.clock(),
            callback=state.settings.referral_callback_url,
        )
    if registration.created:
        wake_dispatcher(state)
    return registration


async def record_total_paid(
    state: AppState, *, user_hash: str, total_amount_paid: Decimal
) -> service.Payment:
    """A user's running total paid, committed; a reward's callback (or, held, its
    ``referral.reward_pending``) sent now (both APIs)."""
    async with state.database.begin() as conn:
        payment = await service.record_payment(
            conn,
            user_hash=user_hash,
            total_amount_paid=total_amount_paid,
            now=state.clock(),
            callback=state.settings.referral_callback_url,
        )
    if payment.acquired_credit or payment.pending_credit:
        wake_dispatcher(state)
    return payment


@router.post(
    "/referral-programs",
    dependencies=[needs("referrals", "manage")],
    status_code=status.HTTP_201_CREATED,
)
async def create_program(
    body: ProgramCreate, state: State, principal: CurrentPrincipal
) -> ProgramOut:
    async with state.database.begin() as conn:
        program = await changes.create_program(
            conn,
            actor=principal,
            name=body.name,
            credit_value=body.credit_value,
            target_value=body.target_value,
            reward_hold_days=body.reward_hold_days,
            now=state.clock(),
        )
    return ProgramOut.model_validate(program)


@router.get("/referral-programs", dependencies=[needs("referrals", "read", listed=True)])
async def list_programs(
    state: State, principal: CurrentPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ProgramPage:
    """Programs, oldest first (the oldest is the default of a registration naming none; for
    a key scoped to some programs, those)."""
    after_key = decode_cursor(cursor, (int,))
    listed = listed_ids(principal, "referrals", "read")
    only = None if listed is None else {int(i) for i in listed}
    async with state.database.begin() as conn:
        page = await service.programs_page(conn, limit=limit, after_key=after_key, only=only)
    return ProgramPage(
        items=[ProgramOut.model_validate(p) for p in page.items], **page_fields(page)
    )


@router.get(
    "/referral-programs/{program_id}",
    dependencies=[needs("referrals", "read", at=PROGRAM)],
    responses={404: {"model": ErrorBody}},
)
async def get_program(program_id: PathId, state: State, _: CurrentPrincipal) -> ProgramOut:
    async with state.database.begin() as conn:
        return ProgramOut.model_validate(await service.get_program(conn, program_id))


@router.patch(
    "/referral-programs/{program_id}",
    dependencies=[needs("referrals", "manage", at=PROGRAM)],
    responses={404: {"model": ErrorBody}},
)
async def update_program(
    program_id: PathId, body: ProgramUpdate, state: State, principal: CurrentPrincipal
) -> ProgramOut:
    """Change a program's terms; referrals already made keep the terms they were made under."""
    async with state.database.begin() as conn:
        program = await changes.update_program(
            conn,
            program_id,
            actor=principal,
            name=body.name,
            credit_value=body.credit_value,
            target_value=body.target_value,
            reward_hold_days=body.reward_hold_days,
            now=state.clock(),
        )
    return ProgramOut.model_validate(program)


@router.delete(
    "/referral-programs/{program_id}",
    dependencies=[needs("referrals", "manage", at=PROGRAM)],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def delete_program(program_id: PathId, state: State, principal: CurrentPrincipal) -> Response:
    """Delete a program no referral was made under (409 otherwise)."""
    async with state.database.begin() as conn:
        await changes.delete_program(conn, program_id, actor=principal, now=state.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/referrals",
    dependencies=[needs("referrals", "use", at=body("program_id", unknown=_unknown_program))],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ReferralOut, "description": "the same registration again: nothing new"},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "already_referred"},
    },
)
async def create_referral(
    body: ReferralCreate, state: State, _: CurrentPrincipal, response: Response
) -> ReferralOut:
    """Record a referred sign-up and credit the new user; a user is referred only once."""
    registration = await register_referral(
        state, referrer=body.referrer, referred=body.referred, program_id=body.program_id
    )
    if not registration.created:
        response.status_code = status.HTTP_200_OK
    return ReferralOut.at(registration.referral, state.clock())


@router.get(
    "/referrals/{user_hash}",
    dependencies=[needs("referrals", "read")],
    responses={404: {"model": ErrorBody}},
)
async def get_referral(user_hash: UserHashPath, state: State, _: CurrentPrincipal) -> ReferralOut:
    """The referral that brought this user in."""
    async with state.database.begin() as conn:
        referral = await service.get_referral(conn, user_hash)
    return ReferralOut.at(referral, state.clock())


@router.put(
    "/referral-users/{user_hash}/payments",
    dependencies=[needs("referrals", "use")],
    responses={404: {"model": ErrorBody}},
)
async def record_payment(
    user_hash: UserHashPath, body: PaymentIn, state: State, _: CurrentPrincipal
) -> PaymentOut:
    """The user's running total of payments; reaching the target rewards the referrer, once."""
    payment = await record_total_paid(
        state, user_hash=user_hash, total_amount_paid=body.total_amount_paid
    )
    return PaymentOut(
        user_hash=payment.user_hash,
        total_amount_paid=payment.total_amount_paid,
        acquired_credit=payment.acquired_credit,
        pending_credit=payment.pending_credit,
        referral=ReferralOut.at(payment.referral, state.clock()) if payment.referral else None,
    )


RefundKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key (and amount) returns the first refund, "
        "lowering the total no further.",
    ),
]


@router.post(
    "/referrals/payments/{user_hash}/refunds",
    responses={
        404: {"model": ErrorBody, "description": "the user was not referred"},
        409: {
            "model": ErrorBody,
            "description": "idempotency_key_reused: the key came with another amount",
        },
    },
    dependencies=[needs("referrals", "use")],
)
async def record_refund(
    user_hash: UserHashPath,
    body: RefundIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: RefundKey = None,
) -> RefundOut:
    """A refund to the referred user: below the target, it voids the referrer's pending
    reward or claws the granted one back (once); the total never goes below 0."""
    now = state.clock()
    async with state.database.begin() as conn:
        refund = await service.record_refund(
            conn,
            user_hash=user_hash,
            amount=body.amount,
            now=now,
            idempotency_key=idempotency_key,
        )
    if refund.reversal is not None:
        wake_dispatcher(state)
    return RefundOut(
        id=refund.id,
        user_hash=refund.user_hash,
        total_amount_paid=refund.total_amount_paid,
        reversal=refund.reversal,
        reversed_credit=refund.reversed_credit,
        referral=ReferralOut.at(refund.referral, now),
    )


@router.get(
    "/referral-users/{user_hash}/statement",
    dependencies=[needs("referrals", "read")],
    responses={404: {"model": ErrorBody}},
)
async def statement(user_hash: UserHashPath, state: State, _: CurrentPrincipal) -> StatementOut:
    """Sign-up credit, potential credit (targets not reached yet), acquired credit."""
    async with state.database.begin() as conn:
        found = await service.statement(conn, user_hash, now=state.clock())
    return StatementOut.model_validate(found)


@router.get(
    "/referral-users/{user_hash}/credits",
    dependencies=[needs("referrals", "read")],
    responses={404: {"model": ErrorBody}},
)
async def list_credits(
    user_hash: UserHashPath,
    state: State,
    _: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> CreditPage:
    """The user's ledger: every credit, oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_credits(conn, user_hash, limit=limit, after_key=after_key)
    return CreditPage(items=[CreditOut.model_validate(c) for c in page.items], **page_fields(page))
