"""The ASGI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from promos import __version__, migrate
from promos.auth import service as auth_service
from promos.auth.credentials import Authenticator
from promos.auth.router import router as auth_router
from promos.clock import Clock, utc_now
from promos.codes.issuer import Issuer
from promos.codes.router import router as codes_router
from promos.compat import ango
from promos.db import Database
from promos.health import router as health_router
from promos.http.errors import install_handlers
from promos.http.fastpath import FastRoutes
from promos.http.limits import AuthenticateUploads, BodyLimit
from promos.settings import Settings
from promos.state import AppState

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    """A Promos app for these settings. Nothing connects until the app starts."""
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    state = AppState(
        settings=settings,
        database=database,
        clock=clock,
        authenticator=Authenticator(database, clock, cache_seconds=settings.auth_cache_seconds),
        issuer=Issuer(
            database,
            clock,
            group_size=settings.issue_batch_size,
            concurrency=settings.issue_concurrency,
            linger_seconds=settings.issue_linger_ms / 1000,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await prepare_database(state)
        # What exists now lives as long as the process: keep it out of the collector's way,
        # or each full collection walks it all (seen as 50 ms pauses under load).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.issuer.drain()
            await database.dispose()

    app = PromosAPI(
        title="Promos",
        version=__version__,
        summary="Code pools, promo codes, referrals and in-game offers.",
        lifespan=lifespan,
    )
    app.state.promos = state
    install_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(codes_router)
    if settings.compat_ango:
        app.include_router(ango.router)
    # Errors raised before any route runs still take the shape of the API that was called.
    error_shapes = ango.ERROR_SHAPES if settings.compat_ango else {}
    app.add_middleware(
        AuthenticateUploads,
        authenticator=state.authenticator,
        shapes=error_shapes,
    )
    app.add_middleware(
        BodyLimit,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        shapes=error_shapes,
    )
    if settings.fast_path and settings.compat_ango:
        app.fast_routes = FastRoutes(ango.fast_routes(state), max_body=settings.max_body_bytes)
    return app


class PromosAPI(FastAPI):
    """FastAPI, with the hot routes (``FastRoutes``) answered before its middleware stack."""

    fast_routes: FastRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_routes
        endpoint = fast.match(scope) if fast is not None else None
        if fast is None or endpoint is None:
            await super().__call__(scope, receive, send)
        else:
            await fast.serve(endpoint, scope, receive, send)


async def prepare_database(state: AppState) -> None:
    """Migrate an embedded SQLite database; require a migrated PostgreSQL; bootstrap the admin."""
    await migrate.prepare(state.database.engine)
    settings = state.settings
    if settings.admin_user and settings.admin_password:
        async with state.database.begin() as conn:
            created = await auth_service.bootstrap_admin(
                conn,
                username=settings.admin_user,
                password=settings.admin_password.get_secret_value(),
                now=state.clock(),
            )
        if created is not None:
            log.info("created the first admin user %r", created.username)


def app_from_env() -> FastAPI:
    """The factory uvicorn's workers call: settings from the environment."""
    return create_app(Settings())
