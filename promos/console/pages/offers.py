"""Offers (seed 004; sales and admins, as the API): games with their claims and impressions
per day, each game's offers by placement with their status, the offer editor, an offer's
versions side by side, enable and disable, duplicate, **Preview as a player** (what
``/available-offers`` gives them now, and why each other offer is left out) and a player's
claims and impressions.

The forms are read into the API's own bodies (``promos.console.offer_forms``); changes go
through ``promos.offers.changes`` with the signed-in person as actor, and the catalog of this
process forgets the game, as the API's routes do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from promos.console import diff, sessions
from promos.console.charts import bar_chart
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.forms import Form
from promos.console.game_days import HeldGameDays
from promos.console.offer_forms import (
    game_values,
    offer_values,
    read_game,
    read_offer,
    read_preview,
    trigger_text,
)
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.offers import changes, player, service
from promos.offers.errors import OfferNotFound
from promos.offers.service import Offer, OfferVersion
from promos.validation import MAX_NAME_LENGTH

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

GAMES = f"{PREFIX}/games"
HISTORY_ROWS = 50
# Any text: an id no game can have finds none (404), as a batch id does on the pools pages.
GameIdPath = Annotated[str, Path()]
Text = Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)]


def _offer_id(text: str) -> UUID:
    """An offer id from a path: anything else names no offer (404, not a form error)."""
    try:
        return UUID(text)
    except ValueError:
        raise OfferNotFound(f"offer {text!r} does not exist") from None


def status_of(offer: Offer, now: datetime) -> str:
    """disabled, scheduled (its trigger has not begun), ended, or live."""
    seconds = int(now.timestamp())
    if not offer.enabled:
        return "disabled"
    if seconds < offer.spec.trigger_from:
        return "scheduled"
    if seconds > offer.spec.trigger_to:
        return "ended"
    return "live"


def _window(offer: Offer) -> str:
    return f"{trigger_text(offer.spec.trigger_from)} to {trigger_text(offer.spec.trigger_to)}"


def _days(request: Request) -> HeldGameDays:
    """This app's held counts (one per app, made at its first game page)."""
    held: HeldGameDays | None = getattr(request.app.state, "console_game_days", None)
    if held is None:
        held = HeldGameDays()
        request.app.state.console_game_days = held
    return held


# --- games ---------------------------------------------------------------------------------


@router.get("/games")
async def games_list(request: Request, state: State, _: Person, after: After = None) -> Response:
    """Games, by id."""
    async with state.database.read() as conn:
        after_key = decode_cursor(after, (str,))
        page = await service.games_page(conn, limit=PAGE_SIZE, after_key=after_key)
    return render(
        request,
        "offers/games.html",
        {"title": "Games", "games": page.items, **pager(request, page, after)},
    )


def _game_form(
    request: Request, form: Form, *, game_id: str | None, status_code: int = 200
) -> Response:
    return render(
        request,
        "offers/game_form.html",
        {"title": "Edit game" if game_id else "New game", "form": form, "game_id": game_id},
        status_code=status_code,
    )


@router.get("/games/new")
async def game_new(request: Request, _: Person) -> Response:
    return _game_form(request, Form(), game_id=None)


@router.post("/games/new")
async def game_create(request: Request, state: State, person: Person) -> Response:
    read, form = read_game(await request.form(), new=True)
    if read is None:
        return _game_form(request, form, game_id=None, status_code=422)
    game_id, name, metadata = read
    async with state.database.begin() as conn:
        if await service.find_game(conn, game_id) is not None:
            form.fail("game_id", "A game with this id exists: choose another, or edit that one.")
            return _game_form(request, form, game_id=None, status_code=422)
        await changes.upsert_game(
            conn, actor=person.principal, game_id=game_id, name=name, metadata=metadata,
            now=state.clock(),
        )  # fmt: skip
        await sessions.set_flash(conn, person.id, f"Game {name} created.")
    state.offers.invalidate(game_id)
    return see_other(f"{GAMES}/{game_id}")


@router.get("/games/{game_id}")
async def game_page(request: Request, game_id: GameIdPath, state: State, _: Person) -> Response:
    """A game: its settings, claims and impressions per day, and where to go from here."""
    now = state.clock()
    async with state.database.read() as conn:
        game = await service.get_game(conn, game_id)
        days = await _days(request).read(conn, game_id, now=now)
        placements = await service.placements(conn, game_id)
    settings = state.settings
    return render(
        request,
        "offers/game.html",
        {
            "title": game.name,
            "game": game,
            "placements": placements,
            "max_age": game.cache_max_age,
            "default_max_age": settings.offers_cache_max_age_seconds,
            "basic_user": settings.offers_basic_auth_username,
            "claims": bar_chart(days.claims, what="claims"),
            "impressions": bar_chart(days.impressions, what="impressions"),
        },
    )


@router.get("/games/{game_id}/edit")
async def game_edit(request: Request, game_id: GameIdPath, state: State, _: Person) -> Response:
    async with state.database.read() as conn:
        game = await service.get_game(conn, game_id)
    form = Form(game_values(game.id, game.name, game.metadata))
    return _game_form(request, form, game_id=game_id)


@router.post("/games/{game_id}/edit")
async def game_update(
    request: Request, game_id: GameIdPath, state: State, person: Person
) -> Response:
    read, form = read_game(await request.form(), new=False)
    form.values["game_id"] = game_id
    if read is None:
        return _game_form(request, form, game_id=game_id, status_code=422)
    _, name, metadata = read
    async with state.database.begin() as conn:
        await service.get_game(conn, game_id)  # an edit never creates a game
        await changes.upsert_game(
            conn, actor=person.principal, game_id=game_id, name=name, metadata=metadata,
            now=state.clock(),
        )  # fmt: skip
        await sessions.set_flash(conn, person.id, f"Game {name} saved.")
    state.offers.invalidate(game_id)
    return see_other(f"{GAMES}/{game_id}")


# --- offers --------------------------------------------------------------------------------


@router.get("/games/{game_id}/offers")
async def offers_list(
    request: Request,
    game_id: GameIdPath,
    state: State,
    _: Person,
    placement: Text = None,
    after: After = None,
) -> Response:
    """The game's offers, oldest first, of one placement or all, with their status."""
    now = state.clock()
    async with state.database.read() as conn:
        game = await service.get_game(conn, game_id)
        placements = await service.placements(conn, game_id)
        page = await service.offers_page(
            conn,
            game_id=game_id,
            limit=PAGE_SIZE,
            after_key=decode_cursor(after, (datetime, UUID)),
            placement=placement or None,
        )
    return render(
        request,
        "offers/offers.html",
        {
            "title": f"Offers · {game.name}",
            "game": game,
            "placements": placements,
            "placement": placement or "",
            "offers": [(o, status_of(o, now), _window(o)) for o in page.items],
            **pager(request, page, after),
        },
    )


def _offer_form(
    request: Request,
    game_id: str,
    form: Form,
    *,
    offer: Offer | None,
    status_code: int = 200,
    now: datetime | None = None,
) -> Response:
    return render(
        request,
        "offers/offer_form.html",
        {
            "title": f"Edit {offer.spec.name}" if offer else "New offer",
            "game_id": game_id,
            "form": form,
            "offer": offer,
            "status": status_of(offer, now) if offer and now else None,
        },
        status_code=status_code,
    )


@router.get("/games/{game_id}/offers/new")
async def offer_new(
    request: Request,
    game_id: GameIdPath,
    state: State,
    _: Person,
    copy: Annotated[str | None, Query(alias="from", max_length=64)] = None,
) -> Response:
    """A new offer's form; ``?from=<offer id>`` fills it with that offer's fields (duplicate)."""
    now = state.clock()
    async with state.database.read() as conn:
        await service.get_game(conn, game_id)
        if copy is None:
            values = {
                "period_every": "",
                "period_max": "1",
                "frequency_every": "1h",  # at most one impression an hour
                "frequency_max": "0",
                "trigger_from": trigger_text(int(now.timestamp())),
            }
        else:
            source = await service.get_offer(conn, game_id=game_id, offer_id=_offer_id(copy))
            values = offer_values(source.spec)
            values["name"] = f"{source.spec.name} (copy)"[:MAX_NAME_LENGTH]
    return _offer_form(request, game_id, Form(values), offer=None)


@router.post("/games/{game_id}/offers/new")
async def offer_create(
    request: Request, game_id: GameIdPath, state: State, person: Person
) -> Response:
    spec, form = read_offer(await request.form())
    if spec is None:
        return _offer_form(request, game_id, form, offer=None, status_code=422)
    async with state.database.begin() as conn:
        offer = await changes.create_offer(
            conn, actor=person.principal, game_id=game_id, spec=spec, now=state.clock()
        )
        await sessions.set_flash(conn, person.id, f"Offer {spec.name} created (version 1).")
    state.offers.invalidate(game_id)
    return see_other(f"{GAMES}/{game_id}/offers/{offer.id}")


@router.get("/games/{game_id}/offers/{offer_id}")
async def offer_page(
    request: Request, game_id: GameIdPath, offer_id: str, state: State, _: Person
) -> Response:
    """The offer's editor: saving makes its next version."""
    async with state.database.read() as conn:
        offer = await service.get_offer(conn, game_id=game_id, offer_id=_offer_id(offer_id))
    return _offer_form(
        request, game_id, Form(offer_values(offer.spec)), offer=offer, now=state.clock()
    )


@router.post("/games/{game_id}/offers/{offer_id}")
async def offer_update(
    request: Request, game_id: GameIdPath, offer_id: str, state: State, person: Person
) -> Response:
    now = state.clock()
    spec, form = read_offer(await request.form())
    async with state.database.begin() as conn:
        current = await service.get_offer(conn, game_id=game_id, offer_id=_offer_id(offer_id))
        if spec is None:
            return _offer_form(request, game_id, form, offer=current, status_code=422, now=now)
        offer = await changes.update_offer(
            conn, actor=person.principal, game_id=game_id, offer_id=current.id, spec=spec, now=now
        )
        await sessions.set_flash(
            conn, person.id, f"Offer {spec.name} saved as version {offer.version}."
        )
    state.offers.invalidate(game_id)
    return see_other(f"{GAMES}/{game_id}/offers/{offer.id}/versions")


async def _set_enabled(
    game_id: str, offer_id: str, state: State, person: Person, *, enabled: bool
) -> Response:
    async with state.database.begin() as conn:
        offer = await changes.set_enabled(
            conn,
            actor=person.principal,
            game_id=game_id,
            offer_id=_offer_id(offer_id),
            enabled=enabled,
            now=state.clock(),
        )
        await sessions.set_flash(
            conn, person.id, f"Offer {offer.spec.name} {'enabled' if enabled else 'disabled'}."
        )
    state.offers.invalidate(game_id)
    return see_other(f"{GAMES}/{game_id}/offers/{offer.id}")


@router.post("/games/{game_id}/offers/{offer_id}/enable")
async def offer_enable(
    game_id: GameIdPath, offer_id: str, state: State, person: Person
) -> Response:
    return await _set_enabled(game_id, offer_id, state, person, enabled=True)


@router.post("/games/{game_id}/offers/{offer_id}/disable")
async def offer_disable(
    game_id: GameIdPath, offer_id: str, state: State, person: Person
) -> Response:
    return await _set_enabled(game_id, offer_id, state, person, enabled=False)


def version_fields(version: OfferVersion) -> dict[str, Any]:
    """A version's fields as the API shows an offer's (for the side-by-side diff)."""
    spec = version.spec
    return {
        "name": spec.name,
        "product_id": spec.product_id,
        "cost": spec.cost,
        "contents": spec.contents,
        "metadata": spec.metadata,
        "placement": spec.placement,
        "period": {"every": spec.period.every, "max": spec.period.max},
        "frequency": {"every": spec.frequency.every, "max": spec.frequency.max},
        "trigger": {"from": spec.trigger_from, "to": spec.trigger_to},
        "filters": {n: f.to_json() for n, f in spec.filters.items()},
    }


@router.get("/games/{game_id}/offers/{offer_id}/versions")
async def offer_versions(
    request: Request,
    *,
    game_id: GameIdPath,
    offer_id: str,
    state: State,
    _: Person,
    a: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    b: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Two versions side by side (by default the one before the newest, and the newest)."""
    async with state.database.read() as conn:
        offer = await service.get_offer(conn, game_id=game_id, offer_id=_offer_id(offer_id))
        versions = await service.offer_versions_of(conn, game_id=game_id, offer_id=offer.id)
    by_number = {v.version: v for v in versions}
    newer = by_number.get(b or versions[0].version, versions[0])
    older_default = versions[1] if len(versions) > 1 else versions[0]
    older = by_number.get(a or older_default.version, older_default)
    rows = diff.rows(version_fields(older), version_fields(newer))
    return render(
        request,
        "offers/versions.html",
        {
            "title": f"Versions · {offer.spec.name}",
            "game_id": game_id,
            "offer": offer,
            "versions": versions,
            "older": older,
            "newer": newer,
            "rows": rows,
            "changed": sum(1 for r in rows if r.kind != "same"),
        },
    )


# --- players -------------------------------------------------------------------------------


@router.get("/games/{game_id}/preview")
async def preview(request: Request, game_id: GameIdPath, state: State, _: Person) -> Response:
    """Preview as a player: the offers shown now, and each other offer's first failing rule."""
    async with state.database.read() as conn:
        game = await service.get_game(conn, game_id)
    context: dict[str, Any] = {"title": f"Preview · {game.name}", "game": game}
    status = 200
    if "player_id" not in request.query_params:
        context.update(form=Form(), explanation=None)
    else:
        body, form = read_preview(request.query_params)
        explanation = None
        if body is None:
            status = 422
        else:
            explanation = await player.explain(
                database=state.database,
                catalog=state.offers,
                game_id=game_id,
                player_id=body.player_id,
                attributes=body.attributes,
                now=state.clock(),
            )
        context.update(form=form, explanation=explanation)
    return render(request, "offers/preview.html", context, status_code=status)


@router.get("/games/{game_id}/player")
async def player_page(
    request: Request,
    game_id: GameIdPath,
    state: State,
    _: Person,
    player_id: Annotated[str | None, Query(alias="id", max_length=MAX_NAME_LENGTH)] = None,
) -> Response:
    """A player's claims and impressions in the game, newest first, and counts by offer."""
    context: dict[str, Any] = {"player_id": player_id or "", "history": None}
    async with state.database.read() as conn:
        game = await service.get_game(conn, game_id)
        if player_id:
            by_offer = await service.player_history(conn, game_id=game_id, player_id=player_id)
            claims = await service.player_claims(
                conn, game_id=game_id, player_id=player_id, limit=HISTORY_ROWS
            )
            seen = await service.player_impressions(
                conn, game_id=game_id, player_id=player_id, limit=HISTORY_ROWS
            )
            names = await service.offer_names(
                conn,
                game_id=game_id,
                offer_ids=[*by_offer, *(c.offer_id for c in claims), *(i.offer_id for i in seen)],
            )
            context.update(
                history=sorted(by_offer.items(), key=lambda item: names.get(item[0], "")),
                claims=claims,
                impressions=seen,
                names=names,
            )
    context.update(title=f"Player · {game.name}", game=game, rows=HISTORY_ROWS)
    return render(request, "offers/player.html", context)
