"""The ASGI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

from promos import __version__, migrate
from promos.audit.router import router as audit_router
from promos.auth import service as auth_service
from promos.auth.credentials import Authenticator
from promos.auth.errors import InvalidCredentials, UserExists
from promos.auth.router import router as auth_router
from promos.auth.usage import KeyUsage
from promos.brands.router import router as brands_router
from promos.catalog.router import router as catalog_router
from promos.clock import Clock, utc_now
from promos.codes.issuer import Issuer
from promos.codes.router import router as codes_router
from promos.codes.sweeper import HoldSweeper
from promos.compat import ango
from promos.compat import discounts as discounts_compat
from promos.compat import offers as offers_compat
from promos.compat import promos_api as promos_compat
from promos.compat import referral as referral_compat
from promos.console.deps import PREFIX as CONSOLE_PREFIX
from promos.console.router import install as install_console
from promos.db import Database, DatabaseUnavailable
from promos.events.destinations import Destinations
from promos.events.dispatcher import Dispatcher
from promos.events.router import router as webhooks_router
from promos.health import router as health_router
from promos.home import router as home_router
from promos.http import openapi
from promos.http.docs import INTRODUCTION, install_docs
from promos.http.errors import ErrorShape, ServerErrors, install_handlers
from promos.http.fastpath import FastEndpoint, FastRoutes
from promos.http.limits import AuthenticateUploads, BodyLimit, upload_routes
from promos.http.paths import RouteSet
from promos.observability import metrics
from promos.observability.logs import AccessLog, chosen_format
from promos.observability.requests import RequestObserver
from promos.observability.router import router as metrics_router
from promos.offers.catalog import OfferCatalog
from promos.offers.counting import Counter
from promos.offers.player import HistoryReader
from promos.offers.router import router as offers_router
from promos.promocodes import fast as promocodes_fast
from promos.promocodes.jobs import GenerationRunner
from promos.promocodes.router import router as promocodes_router
from promos.ratelimit import RateLimits
from promos.referrals.router import router as referrals_router
from promos.settings import Settings, from_environment
from promos.state import AppState

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock = utc_now, prepare: bool = True) -> FastAPI:
    """A Promos app for these settings. Nothing connects until the app starts; then, unless
    ``prepare`` is false (``promos serve`` did it once for all its processes), it prepares the
    database (``prepare_database``)."""
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        driver_reads=settings.offers_concurrency,  # one per concurrent history read
        driver_statements=settings.fast_path_connections,
        driver_issuing=settings.issue_concurrency,  # one per issuing statement in flight
    )
    dispatcher = (
        Dispatcher.from_settings(settings, database, clock) if settings.webhook_dispatcher else None
    )
    # The hot paths' events are delivered as soon as they commit, not at the next poll.
    on_events = dispatcher.wake if dispatcher is not None else None
    limits = RateLimits.from_settings(settings, clock)
    state = AppState(
        settings=settings,
        database=database,
        clock=clock,
        authenticator=Authenticator(
            database,
            clock,
            cache_seconds=settings.auth_cache_seconds,
            seed_basic=_offers_basic(settings),
            seed_routes=offers_compat.MANAGEMENT_ROUTES,
            limits=limits,
            usage=KeyUsage(database, clock, flush_seconds=settings.api_key_usage_flush_seconds),
        ),
        issuer=Issuer(
            database,
            clock,
            group_size=settings.issue_batch_size,
            concurrency=settings.issue_concurrency,
            linger_seconds=settings.issue_linger_ms / 1000,
            on_events=on_events,
        ),
        offers=OfferCatalog(database, ttl=settings.offers_catalog_seconds),
        offer_histories=HistoryReader(
            database, group_size=settings.offers_batch_size, concurrency=settings.offers_concurrency
        ),
        offer_counter=Counter(
            database,
            group_size=settings.offers_batch_size,
            concurrency=settings.offers_concurrency,
            on_events=on_events,
        ),
        limits=limits,
        webhook_destinations=Destinations.allowing(settings.webhook_allowed_hosts),
        generations=GenerationRunner(database, clock),
        dispatcher=dispatcher,
        hold_sweeper=HoldSweeper(
            database,
            clock,
            every_seconds=settings.pool_hold_sweep_seconds,
            on_events=on_events,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if prepare:
            await prepare_database(database, settings, clock())
        try:
            await database.detect_engine()
        except DatabaseUnavailable:
            log.warning("database unavailable at start-up: its kind is found at the first use")
        metrics.app_started(database.engine)
        # What exists now lives as long as the process: keep it out of the collector's way,
        # or each full collection walks it all (seen as 50 ms pauses under load).
        gc.collect()
        gc.freeze()
        try:
            async with _background(state):
                yield
        finally:
            await state.generations.drain()
            await state.issuer.drain()
            await state.limits.close()
            await database.dispose()
            metrics.app_stopped(database.engine)

    app = PromosAPI(
        title="Promos",
        version=__version__,
        summary="Code pools, promo codes, referrals and in-game offers.",
        description=INTRODUCTION,
        lifespan=lifespan,
        # Served by install_docs, with their assets from this process instead of a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.promos = state
    # Errors raised before any route runs, and 500s, take the shape of the API that was called.
    error_shapes = _error_shapes(settings)
    install_handlers(app)
    _include(app, home_router)
    install_docs(app)
    _include(app, health_router)
    _include(app, auth_router)
    _include(app, codes_router)
    _include(app, promocodes_router)
    _include(app, catalog_router)
    _include(app, brands_router)
    _include(app, referrals_router)
    _include(app, webhooks_router)
    _include(app, audit_router)
    _include(app, offers_router)
    _include_optional(app, settings)
    # Only the routes that take a file may take PROMOS_MAX_UPLOAD_BYTES, whatever a body's
    # content type says; every other one takes PROMOS_MAX_BODY_BYTES.
    upload_list = list(upload_routes(app.routes))
    uploads = RouteSet(upload_list)
    app.add_middleware(
        AuthenticateUploads,
        authenticator=state.authenticator,
        # The console's uploads are let in by a session, which its route class checks before
        # it reads a body.
        uploads=RouteSet(r for r in upload_list if not r[1].startswith(f"{CONSOLE_PREFIX}/")),
        shapes=error_shapes,
    )
    app.add_middleware(
        BodyLimit,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        uploads=uploads,
        shapes=error_shapes,
    )
    # Added last, so outermost: it answers what any route or middleware failed to.
    app.add_middleware(ServerErrors, shapes=error_shapes)
    app.fast_routes = _fast_routes(state, error_shapes)
    _observe(app, state)
    return app


@asynccontextmanager
async def _background(state: AppState) -> AsyncIterator[None]:
    """The app's background work while it serves: webhook delivery, API key usage flushes,
    ending lapsed pool code holds."""
    dispatcher, usage, sweeper = state.dispatcher, state.authenticator.usage, state.hold_sweeper
    if dispatcher is not None:
        dispatcher.start()
    if usage is not None:
        usage.start()
    if sweeper is not None:
        sweeper.start()
    try:
        yield
    finally:
        if sweeper is not None:
            await sweeper.stop()
        if usage is not None:
            await usage.stop()
        if dispatcher is not None:
            await dispatcher.stop()


def _observe(app: PromosAPI, state: AppState) -> None:
    """``GET /metrics``, the pool's usage, and the observer of every request, as set."""
    settings = state.settings
    metrics.observe_pool(state.database.engine)
    if settings.metrics:
        _include(app, metrics_router)
    access_log = AccessLog(chosen_format(settings.log_format)) if settings.access_log else None
    app.observer = RequestObserver(access_log=access_log, record_metrics=settings.metrics)


def _include_optional(app: FastAPI, settings: Settings) -> None:
    """The compatible APIs and the console, each unless its setting turns it off."""
    if settings.compat_ango:
        _include(app, ango.router)
    if settings.compat_promos:
        _include(app, promos_compat.router)
    if settings.compat_discounts:
        _include(app, discounts_compat.router)
    if settings.compat_referral:
        _include(app, referral_compat.router)
    if settings.compat_offers:
        _include(app, offers_compat.router)
    if settings.console:
        install_console(app)


def _include(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes: ``app.include_router(router)``, with the routes as built once.

    ``include_router`` analyses every route again (signature, dependencies, pydantic
    adapters) for each app it is given to: about 0.2 s of CPU for all of Promos's, paid by the
    first request of each worker, and by every test, which builds an app of its own. The
    routers take no include-time options, so the routes that they built at import serve as
    they are (the same paths, responses and OpenAPI document).
    """
    app.router.routes.extend(router.routes)


def _error_shapes(settings: Settings) -> dict[str, ErrorShape]:
    shapes: dict[str, ErrorShape] = {}
    if settings.compat_ango:
        shapes.update(ango.ERROR_SHAPES)
    if settings.compat_offers:
        shapes.update(offers_compat.ERROR_SHAPES)
    if settings.compat_promos:
        shapes.update(promos_compat.ERROR_SHAPES)
    if settings.compat_discounts:
        shapes.update(discounts_compat.ERROR_SHAPES)
    if settings.compat_referral:
        shapes.update(referral_compat.ERROR_SHAPES)
    return shapes


def _fast_routes(state: AppState, shapes: dict[str, ErrorShape]) -> FastRoutes | None:
    """The hot routes (of the compat APIs that are on, and the promo codes' use), unless
    PROMOS_FAST_PATH=false."""
    settings = state.settings
    routes: dict[tuple[str, str], FastEndpoint] = {}
    if settings.fast_path and settings.compat_ango:
        routes.update(ango.fast_routes(state))
    if settings.fast_path and settings.compat_offers:
        routes.update(offers_compat.fast_routes(state))
    if settings.fast_path:
        routes.update(promocodes_fast.fast_routes(state))
    if not routes:
        return None
    return FastRoutes(routes, max_body=settings.max_body_bytes, shapes=shapes)


def _offers_basic(settings: Settings) -> tuple[str, str] | None:
    """The Offers seed's own Basic credential (OFFERS_BASICAUTH_*), if both are set and the
    Offers API, the only one it opens, is served."""
    user, password = settings.offers_basic_auth_username, settings.offers_basic_auth_password
    if not settings.compat_offers or not user or password is None:
        return None
    if not password.get_secret_value():
        return None
    return user, password.get_secret_value()


class PromosAPI(FastAPI):
    """FastAPI, with the hot routes (``FastRoutes``) answered before its middleware stack.

    Every HTTP request, fast or not, goes through ``observer`` first: request id, metrics,
    access line.
    """

    fast_routes: FastRoutes | None = None
    observer: RequestObserver | None = None

    def openapi(self) -> dict[str, Any]:
        cached = self.openapi_schema
        document = super().openapi()
        if document is not cached:  # made anew: finish it, once
            openapi.finish(document)
        return document

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observer = self.observer
        if observer is not None and scope["type"] == "http":
            await observer(scope, receive, send, self._serve)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_routes
        endpoint = fast.match(scope) if fast is not None else None
        if fast is None or endpoint is None:
            await super().__call__(scope, receive, send)
        else:
            await fast.serve(endpoint, scope, receive, send, fallback=super().__call__)


async def prepare_database(database: Database, settings: Settings, now: datetime) -> None:
    """Migrate an embedded SQLite database; require a migrated PostgreSQL; bootstrap the admin."""
    await migrate.prepare(database.engine)
    await bootstrap_admin(database, settings, now)


async def bootstrap_admin(database: Database, settings: Settings, now: datetime) -> None:
    """Create PROMOS_ADMIN_USER on a database without users; warn when it is not created and
    that admin cannot sign in with PROMOS_ADMIN_PASSWORD (the variables are ignored then)."""
    if settings.admin_user is None or settings.admin_password is None:
        return
    username, password = settings.admin_user, settings.admin_password.get_secret_value()
    try:
        async with database.begin() as conn:
            created = await auth_service.bootstrap_admin(
                conn, username=username, password=password, now=now
            )
    except UserExists:  # another node, started at the same moment, created it first
        created = None
    if created is not None:
        log.info("created the first admin user %r", created.username)
        return
    # Set on every start, as they usually stay: silent while they still describe an admin.
    async with database.begin() as conn:
        try:
            user = await auth_service.verify_password(conn, username, password)
        except InvalidCredentials:
            user = None
    if user is None or user.role != "admin":
        log.warning(
            "PROMOS_ADMIN_USER and PROMOS_ADMIN_PASSWORD are ignored: they create the first "
            "admin only while no user exists, and users exist already (%r cannot sign in as "
            "an admin with that password; `promos users create` adds an admin)",
            username,
        )


def app_from_env() -> FastAPI:
    """The factory ``promos serve``'s processes call: settings from the environment and
    ``.env``; the database was prepared once, by ``promos serve``, before they started."""
    return create_app(from_environment(), prepare=False)
