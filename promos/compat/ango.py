"""Ango's HTTP API (seed 000), exactly at its paths: issue ("redeem"), batches, CSV upload.

Errors are Ango-style ``{"error": "<message>"}`` with the status of the domain error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, File, Form, Header, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Scope

from promos.audit import service as audit
from promos.codes import csv_import, service
from promos.codes.errors import BatchNotFound, InvalidRules
from promos.codes.service import IssueRequest, Rules
from promos.errors import PromosError
from promos.http.deps import CurrentPrincipal, State, route_of
from promos.http.errors import headers_for, invalid_input, status_for
from promos.http.fastpath import FastEndpoint, header
from promos.http.ratelimit import client_key
from promos.http.responses import JSON
from promos.http.routes import ApiErrors, error_route_class
from promos.http.scopes import Need, Values, body, listed_ids, needs
from promos.observability.requests import set_principal
from promos.state import AppState
from promos.validation import MAX_NAME_LENGTH, PRINTABLE

REDEEM_PATH = "/api/v1/code/redeem"
MAX_KEY_LENGTH = 255


class AngoError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "batch 0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a has no codes left"}]
        },
        use_attribute_docstrings=True,
    )

    error: str
    """What went wrong, for a person."""


UPLOAD_PATH = "/api/v1/codes/upload"


def ango_body(exc: PromosError) -> dict[str, str]:
    return {"error": exc.message}


ERROR_SHAPES = {REDEEM_PATH: ango_body, UPLOAD_PATH: ango_body}


def ango_error(status: int, exc: PromosError) -> Response:
    return JSON(ango_body(exc), status_code=status, headers=headers_for(exc))


router = APIRouter(
    tags=["Ango (compat)"],
    route_class=error_route_class(ango_error, ApiErrors(AngoError, status_for)),
)


class RedeemIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batchid": "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
                    "clientid": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "customerid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
    )

    batchid: UUID
    """The batch."""
    clientid: UUID
    """The client."""
    customerid: UUID
    """Who gets the code."""


class RedeemOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": "SUMMER-0001"}]}, use_attribute_docstrings=True
    )

    code: str
    """The code handed out."""


class AngoRules(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    maxpercustomer: int | None = None
    """At most this many codes per customer; null for no limit."""
    timelimit: Annotated[int | None, Field(description="days")] = None


class AngoBatch(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    """The batch's id."""
    name: str
    """The batch's name."""
    rules: AngoRules
    """The per-customer rules."""
    expired: bool
    """Whether issuing from it has stopped."""


class UploadOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    message: str
    """What was done, for a person."""
    batch_id: UUID
    """The batch made."""
    count: int
    """How many codes it holds."""


async def redeem_code(state: AppState, body: RedeemIn, idempotency_key: str | None) -> str:
    issued = await state.issuer.issue(
        IssueRequest(body.batchid, body.clientid, str(body.customerid), idempotency_key)
    )
    return issued.code


# A pool of a client outside the key's scope answers as an unknown batch.
REDEEM_NEED = Need(
    "pools",
    "use",
    at=body(
        "clientid", unknown=lambda v: BatchNotFound(f"batch {v.body.get('batchid')} does not exist")
    ),
)


@router.post(
    REDEEM_PATH,
    dependencies=[Depends(REDEEM_NEED)],
    responses={
        403: {
            "model": AngoError,
            "description": "the batch's per-customer rule is not met",
        },
        404: {"model": AngoError, "description": "unknown batch"},
        409: {"model": AngoError, "description": "no codes left"},
        410: {"model": AngoError, "description": "the batch has expired"},
    },
)
async def redeem(
    body: RedeemIn,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH)
    ] = None,
) -> RedeemOut:
    """Hand one unused code of the batch to the customer ("redeem" in Ango's words)."""
    return RedeemOut(code=await redeem_code(state, body, idempotency_key))


@router.get("/api/v1/batches", dependencies=[needs("pools", "read", listed=True)])
async def batches(state: State, principal: CurrentPrincipal) -> list[AngoBatch]:
    """Every batch with its rules and whether it has expired (for a key scoped to some
    clients, the batches holding their codes)."""
    listed = listed_ids(principal, "pools", "read")
    clients = None if listed is None else {UUID(c) for c in listed}
    async with state.database.begin() as conn:
        found = await service.list_batches(conn, clients=clients)
    return [
        AngoBatch(
            id=b.id,
            name=b.name,
            rules=AngoRules(**b.rules.to_json()),
            expired=b.expired,
        )
        for b in found
    ]


_UPLOAD_EXAMPLE = {
    "file": "client_id,code\n5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b,SUMMER-0001\n",
    "batch_name": "Summer sale",
    "rules": '{"maxpercustomer":1,"timelimit":30}',
}


@router.post(
    UPLOAD_PATH,
    dependencies=[needs("pools", "manage")],
    responses={409: {"model": AngoError}},
    openapi_extra={
        "requestBody": {"content": {"multipart/form-data": {"example": _UPLOAD_EXAMPLE}}}
    },
)
async def upload(
    state: State,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="CSV with the header client_id,code")],
    batch_name: Annotated[
        str,
        Form(
            min_length=1,
            max_length=MAX_NAME_LENGTH,
            pattern=PRINTABLE,
            description="the name of the batch the upload makes",
        ),
    ],
    rules: Annotated[
        str | None, Form(description='e.g. {"maxpercustomer":2,"timelimit":30}')
    ] = None,
) -> UploadOut:
    """Create a batch from a CSV file: every code is stored, or none if any row is wrong."""
    parsed = _rules(rules)
    now = state.clock()
    async with state.database.begin() as conn:
        batch, count = await csv_import.import_batch(
            conn, file.file, name=batch_name, rules=parsed, now=now
        )
        await audit.record(
            conn,
            actor=principal,
            action="batch.import",
            target_type="batch",
            target_id=batch.id,
            after={"batch": batch, "added": count},
            at=now,
        )
    return UploadOut(message="Codes uploaded successfully", batch_id=batch.id, count=count)


def _rules(raw: str | None) -> Rules:
    if raw is None or not raw.strip():
        return Rules()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRules('rules must be a JSON object, e.g. {"maxpercustomer":2}') from None
    return Rules.from_json(data)


def fast_routes(state: AppState) -> dict[tuple[str, str], FastEndpoint]:
    """The redeem route without the framework's per-request cost (same model, same checks)."""

    async def redeem_fast(
        scope: Scope, body: bytes, headers: Mapping[bytes, bytes]
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        try:
            principal = await state.authenticator.authenticate(
                header(headers, b"authorization"),
                header(headers, b"x-api-key"),
                route=route_of(scope),
                client=client_key(scope),
            )
            set_principal(scope, principal)
            # The route's scope, as its FastAPI twin checks it: lookups in the cached key,
            # the action before the body is read, the client once it is.
            ids = REDEEM_NEED.granted(principal)
            try:
                payload = RedeemIn.model_validate_json(body)
            except ValidationError as exc:
                raise invalid_input(exc.errors()) from None
            # The client is a UUID already, in the spelling scopes keep: a set lookup. Only a
            # refusal builds what admit() needs to say why.
            if ids is not None and not REDEEM_NEED.admits(ids, str(payload.clientid)):
                REDEEM_NEED.admit(
                    principal,
                    Values(body={"clientid": payload.clientid, "batchid": payload.batchid}),
                )
            key = header(headers, b"idempotency-key")
            if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
                raise invalid_input(
                    [
                        {
                            "loc": ("header", "Idempotency-Key"),
                            "msg": "1 to 255 characters",
                            "type": "string_length",
                        }
                    ]
                )
            return 200, {"code": await redeem_code(state, payload, key)}, []
        except PromosError as exc:
            extra = [(k.lower().encode(), v.encode()) for k, v in headers_for(exc).items()]
            return status_for(exc), ango_body(exc), extra

    return {("POST", REDEEM_PATH): redeem_fast}
