"""What one running app holds: settings, database, clock and the shared services."""

from __future__ import annotations

from dataclasses import dataclass

from promos.auth.credentials import Authenticator
from promos.clock import Clock
from promos.codes.issuer import Issuer
from promos.codes.sweeper import HoldSweeper
from promos.db import Database
from promos.events.destinations import Destinations
from promos.events.dispatcher import Dispatcher
from promos.offers.catalog import OfferCatalog
from promos.offers.counting import Counter
from promos.offers.player import HistoryReader
from promos.promocodes.jobs import GenerationRunner
from promos.ratelimit import RateLimits
from promos.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    database: Database
    clock: Clock
    authenticator: Authenticator
    issuer: Issuer
    # Each game's offers, held for PROMOS_OFFERS_CATALOG_SECONDS (the hot route reads them).
    offers: OfferCatalog
    offer_histories: HistoryReader
    offer_counter: Counter
    # Rate limits of the public routes, the Offers player routes and sign-in.
    limits: RateLimits
    # Where webhook subscriptions may point (PROMOS_WEBHOOK_ALLOWED_HOSTS).
    webhook_destinations: Destinations
    # Promo code generations the console runs in the background (promos.promocodes.jobs).
    generations: GenerationRunner
    # The webhook dispatcher running in this process (None when PROMOS_WEBHOOK_DISPATCHER=false).
    dispatcher: Dispatcher | None = None
    # Ends lapsed pool code holds every PROMOS_POOL_HOLD_SWEEP_SECONDS (None: never).
    hold_sweeper: HoldSweeper | None = None
