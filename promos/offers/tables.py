"""Offers: games, offer templates (the current version of each), per-player state, and the
claims and impressions that made it (their ids make both idempotent).

Every row is keyed by its game first, so that the schema can be distributed by game.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from promos.db import UTCDateTime, metadata

# JSONB on PostgreSQL (filters are searched through a GIN index), JSON text on SQLite.
Document = JSON().with_variant(JSONB(), "postgresql")


def _spec_columns() -> list[Column[Any]]:
    """What an offer template says (``OfferSpec`` but its filters): each version's, too."""
    return [
        Column("name", String(255), nullable=False),
        Column("product_id", String(255), nullable=True),
        Column("cost", Document, nullable=True),
        Column("contents", Document, nullable=False),
        Column("metadata", Document, nullable=False),
        Column("placement", String(255), nullable=False),
        Column("period_every", String(64), nullable=False),
        Column("period_max", Integer, nullable=False),
        Column("frequency_every", String(64), nullable=False),
        Column("frequency_max", Integer, nullable=False),
        Column("trigger_from", BigInteger, nullable=False),
        Column("trigger_to", BigInteger, nullable=False),
    ]


games = Table(
    "games",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("metadata", Document, nullable=False),
    # Bumped by every change to the game or one of its offers, in the same transaction: the
    # in-process catalog reloads a game's offers only when this has moved.
    Column("revision", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

offers = Table(
    "offers",
    metadata,
    Column("game_id", String(255), primary_key=True),
    Column("id", Uuid, primary_key=True),
    # The current version's own id: a new one with each version, while ``id`` stays.
    Column("key", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    *_spec_columns(),
    Column("enabled", Boolean, nullable=False),
    Column("filters", Document, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["game_id"], ["games.id"]),
    # The list of a game's offers, in creation order.
    Index("ix_offers_game_created", "game_id", "created_at", "id"),
    # A claim by productId finds its offer here.
    Index("ix_offers_game_product", "game_id", "product_id"),
    # eq filters on PostgreSQL: filters @> '{"k": {"eq": "v"}}'.
    Index(
        "ix_offers_filters",
        "filters",
        postgresql_using="gin",
        postgresql_ops={"filters": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)

# Every version of every offer as it was made (``offers`` holds the current one). Offers are
# never deleted; no foreign key, so that the rows of an offer may move with it (the benchmark
# gives its offer a fixed id) and the table distributes by game alone.
offer_versions = Table(
    "offer_versions",
    metadata,
    Column("game_id", String(255), primary_key=True),
    Column("offer_id", Uuid, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", Uuid, nullable=False),
    *_spec_columns(),
    Column("filters", Document, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),  # when this version was made
)

# One row per (game, player, offer) the player has claimed or seen: counted atomically.
offer_players = Table(
    "offer_players",
    metadata,
    Column("game_id", String(255), primary_key=True),
    Column("player_id", String(255), primary_key=True),
    Column("offer_id", Uuid, primary_key=True),
    Column("claim_count", Integer, nullable=False, server_default=text("0")),
    Column("last_claim_at", UTCDateTime, nullable=True),
    Column("impression_count", Integer, nullable=False, server_default=text("0")),
    Column("last_impression_at", UTCDateTime, nullable=True),
)

# One row per claim; its transaction id is what makes a claim idempotent.
offer_claims = Table(
    "offer_claims",
    metadata,
    Column("game_id", String(255), primary_key=True),
    Column("transaction_id", String(255), primary_key=True),
    Column("player_id", String(255), nullable=False),
    Column("offer_id", Uuid, nullable=False),
    Column("offer_version", Integer, nullable=False),
    Column("purchased_at", BigInteger, nullable=False),  # the caller's unix timestamp
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("contents", Document, nullable=False),
    Column("next_at", BigInteger, nullable=True),  # what the first answer said, for replays
    # A game's claims by time: claims per day (the dashboard).
    Index("ix_offer_claims_game_claimed", "game_id", "claimed_at"),
    # A player's claims, newest first (the console's player page).
    Index("ix_offer_claims_game_player", "game_id", "player_id", "claimed_at"),
)

# One row per impression; its id is what makes an impression idempotent.
offer_impressions = Table(
    "offer_impressions",
    metadata,
    Column("game_id", String(255), primary_key=True),
    Column("impression_id", Uuid, primary_key=True),
    Column("player_id", String(255), nullable=False),
    Column("offer_id", Uuid, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("next_at", BigInteger, nullable=True),
    # A game's impressions by time: impressions per day (the dashboard).
    Index("ix_offer_impressions_game_seen", "game_id", "seen_at"),
    # A player's impressions, newest first (the console's player page).
    Index("ix_offer_impressions_game_player", "game_id", "player_id", "seen_at"),
)
