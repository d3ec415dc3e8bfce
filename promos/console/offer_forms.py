"""The games and offers forms: typed text read into the API's own bodies (``GameIn``,
``OfferIn``, ``ExplanationIn``) and the domain's checks, each error by the field it is about.

A form field is flat (``period_max``); the API's body nests it (``period.max``): ``FIELD_OF``
turns a location or a domain message's subject into the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from promos.console.forms import Form, describe, text_values
from promos.errors import InvalidInput
from promos.offers.schemas import ExplanationIn, GameId, GameIn, OfferIn
from promos.offers.service import OfferSpec, check_game_metadata

GAME_FIELDS = ("game_id", "name", "cache_max_age", "allow_inefficient_queries", "metadata")
OFFER_FIELDS = (
    "name",
    "product_id",
    "cost",
    "contents",
    "metadata",
    "placement",
    "period_every",
    "period_max",
    "frequency_every",
    "frequency_max",
    "trigger_from",
    "trigger_to",
    "filters",
)
PREVIEW_FIELDS = ("player_id", "attributes")
_JSON_FIELDS = ("cost", "contents", "metadata", "filters")
_NESTED = ("period", "frequency", "trigger")
_WHOLE = re.compile(r"^[+-]?\d+$")
_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIME_ERROR = "A UTC time such as 2026-12-24 10:00, or Unix seconds."
_GAME_ID = TypeAdapter(GameId)
_LAST_SECOND = 253_402_300_799  # 9999-12-31 23:59:59 UTC, the last a calendar shows


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _pydantic_errors(
    form: Form, exc: ValidationError, field_of: Mapping[tuple[str, ...], str]
) -> None:
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        name = field_of.get(loc[:2]) or field_of.get(loc[:1]) or ""
        if name in form.errors:
            continue
        message = describe(error["type"], error.get("ctx") or {}, error["msg"])
        if name:
            form.errors[name] = message
        else:
            form.problem = message


def _json(form: Form, name: str, *, required: bool = False) -> Any:
    """The JSON a field holds (``None`` when blank), or an error by the field."""
    text = form.value(name).strip()
    if not text:
        if required:
            form.fail(name, "Required.")
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        form.fail(name, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).")
        return None


def _whole(form: Form, name: str, *, message: str = "A whole number.") -> int | None:
    text = form.value(name).strip()
    if not text:
        form.fail(name, "Required.")
        return None
    if not _WHOLE.match(text):
        form.fail(name, message)
        return None
    return int(text)


# --- games ---------------------------------------------------------------------------------


def game_values(game_id: str, name: str, metadata: Mapping[str, Any]) -> dict[str, str]:
    """A game as its form shows it."""
    rest = {
        k: v for k, v in metadata.items() if k not in {"cacheMaxAge", "allowInefficientQueries"}
    }
    age = metadata.get("cacheMaxAge")
    return {
        "game_id": game_id,
        "name": name,
        "cache_max_age": "" if age is None else str(age),
        "allow_inefficient_queries": "on" if metadata.get("allowInefficientQueries") else "",
        "metadata": orjson.dumps(rest, option=orjson.OPT_INDENT_2).decode() if rest else "",
    }


def read_game(
    data: Mapping[str, Any], *, new: bool
) -> tuple[tuple[str, str, dict[str, Any]] | None, Form]:
    """(game id, name, metadata) from the game form, checked as ``PUT /v1/games/{id}``
    checks them, or ``None`` and the form with its errors."""
    form = Form(text_values(data, GAME_FIELDS))
    game_id = form.value("game_id").strip()
    if new:
        try:
            _GAME_ID.validate_python(game_id)
        except ValidationError:
            form.fail(
                "game_id",
                "Required: letters, digits, - and _, not starting with -."
                if game_id
                else "Required.",
            )
    metadata = _json(form, "metadata")
    if metadata is not None and not isinstance(metadata, dict):
        form.fail("metadata", 'A JSON object, e.g. {"theme": "winter"}.')
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    if form.value("cache_max_age").strip():
        age = _whole(form, "cache_max_age", message="A whole number of seconds.")
        if age is not None:
            metadata["cacheMaxAge"] = age
    if form.value("allow_inefficient_queries"):
        metadata["allowInefficientQueries"] = True
    try:
        body = GameIn.model_validate({"name": form.value("name").strip(), "metadata": metadata})
    except ValidationError as exc:
        _pydantic_errors(form, exc, {("name",): "name", ("metadata",): "metadata"})
        return None, form
    try:
        checked = check_game_metadata(body.metadata)
    except InvalidInput as exc:
        field = "cache_max_age" if "cacheMaxAge" in exc.message else "metadata"
        form.fail(field, _sentence(exc.message.removeprefix("metadata.cacheMaxAge ")))
    if not form.ok:
        return None, form
    return (game_id, body.name, checked), form


# --- offers --------------------------------------------------------------------------------


def trigger_text(seconds: int) -> str:
    """A trigger bound as its field shows it: a UTC time, or the number where none fits."""
    if 0 <= seconds <= _LAST_SECOND:
        return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)
    return str(seconds)


def _trigger(form: Form, name: str) -> int | None:
    text = form.value(name).strip()
    if not text:
        form.fail(name, "Required.")
        return None
    if _WHOLE.match(text):
        return int(text)
    for pattern in _TIME_FORMATS:
        try:
            return int(datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    form.fail(name, _TIME_ERROR)
    return None


def _shown_json(value: Any) -> str:
    return "" if not value else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def offer_values(spec: OfferSpec) -> dict[str, str]:
    """An offer's fields as its form shows them."""
    return {
        "name": spec.name,
        "product_id": spec.product_id or "",
        "cost": "" if spec.cost is None else _shown_json(spec.cost) or "{}",
        "contents": orjson.dumps(spec.contents, option=orjson.OPT_INDENT_2).decode(),
        "metadata": _shown_json(spec.metadata),
        "placement": spec.placement,
        "period_every": spec.period.every,
        "period_max": str(spec.period.max),
        "frequency_every": spec.frequency.every,
        "frequency_max": str(spec.frequency.max),
        "trigger_from": trigger_text(spec.trigger_from),
        "trigger_to": trigger_text(spec.trigger_to),
        "filters": _shown_json({n: f.to_json() for n, f in spec.filters.items()}),
    }


_OFFER_FIELD_OF: dict[tuple[str, ...], str] = {
    **{(name,): name for name in OFFER_FIELDS},
    **{(nested,): f"{nested}_every" for nested in _NESTED},
    ("period", "every"): "period_every",
    ("period", "max"): "period_max",
    ("frequency", "every"): "frequency_every",
    ("frequency", "max"): "frequency_max",
    ("trigger", "from"): "trigger_from",
    ("trigger", "to"): "trigger_to",
}


def _field_of_message(message: str) -> str | None:
    """The field a domain message is about, from the subject it starts with."""
    if message.startswith("an offer needs"):
        return "product_id"
    subject = re.split(r"[ :]", message, maxsplit=1)[0]
    parts = tuple(subject.split("."))
    if parts[0] == "filters":
        return "filters"
    return _OFFER_FIELD_OF.get(parts[:2]) or _OFFER_FIELD_OF.get(parts[:1])


def read_offer(data: Mapping[str, Any]) -> tuple[OfferSpec | None, Form]:
    """An offer's spec from its form, checked as ``POST /v1/games/{id}/offers`` checks it,
    or ``None`` and the form with its errors by field."""
    form = Form(text_values(data, OFFER_FIELDS))
    documents = {name: _json(form, name, required=name == "contents") for name in _JSON_FIELDS}
    period_max = _whole(form, "period_max")
    frequency_max = _whole(form, "frequency_max")
    trigger_from, trigger_to = _trigger(form, "trigger_from"), _trigger(form, "trigger_to")
    body = {
        "name": form.value("name").strip(),
        "product_id": form.value("product_id").strip() or None,
        "placement": form.value("placement").strip(),
        "period": {"every": form.value("period_every").strip(), "max": period_max or 0},
        "frequency": {"every": form.value("frequency_every").strip(), "max": frequency_max or 0},
        "trigger": {"from": trigger_from or 0, "to": trigger_to or 0},
        **{name: value for name, value in documents.items() if value is not None},
    }
    try:
        offer = OfferIn.model_validate(body)
    except ValidationError as exc:
        _pydantic_errors(form, exc, _OFFER_FIELD_OF)
        return None, form
    if not form.ok:
        return None, form
    try:
        spec = offer.to_spec()
    except InvalidInput as exc:
        field = _field_of_message(exc.message)
        if field is None:
            form.problem = _sentence(exc.message)
        else:
            form.fail(field, _sentence(exc.message))
        return None, form
    return spec, form


# --- preview -------------------------------------------------------------------------------


def read_preview(data: Mapping[str, Any]) -> tuple[ExplanationIn | None, Form]:
    """A player id and attributes (``name=value``, one a line), as the explanation route's
    body, or ``None`` and the form with its errors."""
    form = Form(text_values(data, PREVIEW_FIELDS))
    attributes: dict[str, str] = {}
    for number, line in enumerate(form.value("attributes").splitlines(), start=1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            form.fail("attributes", f"Line {number}: name=value, e.g. country=BR.")
            return None, form
        attributes[name.strip()] = value.strip()
    try:
        body = ExplanationIn.model_validate(
            {"player_id": form.value("player_id").strip(), "attributes": attributes}
        )
    except ValidationError as exc:
        _pydantic_errors(form, exc, {("player_id",): "player_id", ("attributes",): "attributes"})
        return None, form
    return body, form
