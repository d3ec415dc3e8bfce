"""Promos on Citus: which tables are distributed by which key, and the step that does it.

Code pools are distributed by ``client_id`` (codes, their quota, idempotency and hold rows
on one shard per client), offers by ``game_id`` (a game's offers and every player's counters on one
shard); the small tables the hot statements read with them are reference tables (a copy on
every node). Everything else stays on the coordinator as plain PostgreSQL tables: referrals
and promo codes (rules global by their seeds' design, far smaller than the pools), the
events' outbox and deliveries (Promos' own queue) and the audit log (docs/deployment.md,
"Growing past one database").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Read with the distributed tables by the hot statements, or referenced by them. Not the
# console's pool counters (pool_counts, pool_daily_issues): Citus has no snapshot across
# nodes, so a read of a reference table's copy on one node and of codes on others could
# meet two versions of a counter moved meanwhile (tests/test_pool_counts.py saw it); on the
# coordinator alone, a read sees one version, and counts the codes since it.
REFERENCE_TABLES = (
    "clients",
    "batches",
    "batch_clients",
    "brand_users",
    "specials",
    "upgrade_programs",
)


@dataclass(frozen=True, slots=True)
class Distributed:
    table: str
    column: str
    colocate_with: str | None = None  # the group's first table; None: the first itself


DISTRIBUTED_TABLES = (
    Distributed("codes", "client_id"),
    Distributed("customer_quotas", "client_id", "codes"),
    Distributed("idempotency_locks", "client_id", "codes"),
    Distributed("pool_code_holds", "client_id", "codes"),
    Distributed("games", "id"),
    Distributed("offers", "game_id", "games"),
    Distributed("offer_versions", "game_id", "games"),
    Distributed("offer_players", "game_id", "games"),
    Distributed("offer_claims", "game_id", "games"),
    Distributed("offer_impressions", "game_id", "games"),
)

# Issuing on Citus, delegated whole to the worker holding the client's shard: one call per
# (batch, client) group instead of a statement Citus plans as 9 steps on the coordinator. Each
# statement inside names the client (the distribution argument), so the worker runs them on its
# own shards, planned once per session (PL/pgSQL caches them). The rules match ``_TAKE``
# (promos/codes/issue.py): free codes locked with SKIP LOCKED, then each customer's quota row
# in customer order; asks served in order, a customer over the rule refused, the codes left
# handed on; one row per ask. A rule counting on another client's shard changes nothing: the
# caller takes the batch's rule from the rows and serves those asks apart. Its helper,
# ``promos_recent_issues``, is the rule's window in the quota upsert: Citus runs only
# IMMUTABLE functions there, no subquery.
_RECENT_FUNCTION_SQL = """\
CREATE OR REPLACE FUNCTION promos_recent_issues(issued timestamptz[], since timestamptz)
RETURNS timestamptz[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT ARRAY(SELECT t FROM unnest(issued) AS t WHERE t > since) $fn$
"""
_RECENT_FUNCTION_SIGNATURE = "promos_recent_issues(timestamptz[], timestamptz)"
ISSUE_FUNCTION = "promos_issue_codes"
ISSUE_FUNCTION_SIGNATURE = f"{ISSUE_FUNCTION}(uuid, uuid, text[], text[], timestamptz, bigint)"
_ISSUE_FUNCTION_SQL = """\
CREATE OR REPLACE FUNCTION promos_issue_codes(
    p_client_id uuid, p_batch_id uuid, p_customers text[], p_keys text[],
    p_now timestamptz, p_from_seq bigint
) RETURNS TABLE (
    r_n integer, r_code text, r_considered boolean, r_first_free bigint, r_listed boolean,
    r_expired boolean, r_max_per_customer integer, r_time_limit_days integer, r_owner uuid
) LANGUAGE plpgsql AS $fn$
DECLARE
    asked integer := cardinality(p_customers);
    v_expired boolean;
    v_most integer;
    v_days integer;
    v_owner uuid;
    v_listed boolean;
    v_since timestamptz;
    v_first bigint;
    free_codes text[];
    free_seqs bigint[];
    more_codes text[];
    more_seqs bigint[];
    sorted text[];
    recent text[];
    touched boolean[];
    counted boolean := false;
    allowed boolean[];
    ok_customer text;
    times timestamptz[];
    got text[] := array_fill(NULL::text, ARRAY[asked]);
    refused boolean[] := array_fill(false, ARRAY[asked]);
    given integer := 0;
    j integer;
BEGIN
    SELECT b.expired, b.max_per_customer, b.time_limit_days, b.client_id
      INTO v_expired, v_most, v_days, v_owner
      FROM batches AS b WHERE b.id = p_batch_id;
    IF FOUND THEN
        v_listed := EXISTS (
            SELECT FROM batch_clients AS l
            WHERE l.batch_id = p_batch_id AND l.client_id = p_client_id
        );
    END IF;
    IF v_listed IS NOT TRUE OR v_expired OR (v_most IS NOT NULL AND v_owner <> p_client_id) THEN
        RETURN QUERY SELECT a.n, NULL::text, false, NULL::bigint, v_listed, v_expired, v_most,
                            v_days, v_owner
                     FROM generate_series(1, asked) AS a(n);
        RETURN;
    END IF;
    SELECT coalesce(array_agg(f.code ORDER BY f.seq), '{}'),
           coalesce(array_agg(f.seq ORDER BY f.seq), '{}')
      INTO free_codes, free_seqs
      FROM (SELECT c.code, c.seq FROM codes AS c
            WHERE c.client_id = p_client_id AND c.batch_id = p_batch_id AND c.issued_at IS NULL
              AND c.seq >= p_from_seq
            ORDER BY c.seq LIMIT asked FOR UPDATE SKIP LOCKED) AS f;
    IF cardinality(free_codes) < asked AND p_from_seq > 0 THEN
        SELECT coalesce(array_agg(f.code ORDER BY f.seq), '{}'),
               coalesce(array_agg(f.seq ORDER BY f.seq), '{}')
          INTO more_codes, more_seqs
          FROM (SELECT c.code, c.seq FROM codes AS c
                WHERE c.client_id = p_client_id AND c.batch_id = p_batch_id AND c.issued_at IS NULL
                  AND c.seq < p_from_seq
                ORDER BY c.seq LIMIT asked - cardinality(free_codes) FOR UPDATE SKIP LOCKED) AS f;
        free_codes := free_codes || more_codes;
        free_seqs := free_seqs || more_seqs;
    END IF;
    IF v_most IS NOT NULL AND cardinality(free_codes) > 0 THEN
        v_since := CASE WHEN v_days IS NULL THEN '-infinity'::timestamptz
                        ELSE p_now - make_interval(days => v_days) END;
        sorted := ARRAY(SELECT DISTINCT u FROM unnest(p_customers) AS u ORDER BY u);
        IF cardinality(free_codes) = asked AND cardinality(sorted) = asked THEN
            -- A code for every ask, each customer once: one multi-row upsert counts and
            -- writes every customer's row (locked in customer order), as _TAKE's does. Built
            -- each time (EXECUTE), yet cheaper than a statement per customer: Citus' overhead
            -- on the worker is per statement.
            counted := true;
            allowed := array_fill(false, ARRAY[asked]);
            FOR ok_customer IN EXECUTE
                'INSERT INTO customer_quotas AS q (client_id, batch_id, customer_id, issued) '
                || 'VALUES ' || (
                    SELECT string_agg(format('($1, $2, %L, ARRAY[$4])', u), ', ' ORDER BY n)
                    FROM unnest(sorted) WITH ORDINALITY AS s(u, n)
                )
                || ' ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE'
                || ' SET issued = promos_recent_issues(q.issued, $3) || $4'
                || ' WHERE cardinality(promos_recent_issues(q.issued, $3)) < $5'
                || ' RETURNING q.customer_id'
                USING p_client_id, p_batch_id, v_since, p_now, v_most
            LOOP
                allowed[array_position(sorted, ok_customer)] := true;
            END LOOP;
        ELSE
            -- Fewer codes than asks: who gets one depends on who is refused before, so each
            -- row is locked and read first, and written once the codes are handed out.
            recent := array_fill(NULL::text, ARRAY[cardinality(sorted)]);
            touched := array_fill(false, ARRAY[cardinality(sorted)]);
            FOR j IN 1 .. cardinality(sorted) LOOP
                INSERT INTO customer_quotas AS q (client_id, batch_id, customer_id, issued)
                VALUES (p_client_id, p_batch_id, sorted[j], '{}')
                ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE SET issued = q.issued
                RETURNING q.issued INTO times;
                recent[j] := promos_recent_issues(times, v_since)::text;
            END LOOP;
        END IF;
    END IF;
    FOR i IN 1 .. asked LOOP
        EXIT WHEN given >= cardinality(free_codes);
        IF counted THEN
            IF NOT allowed[array_position(sorted, p_customers[i])] THEN
                refused[i] := true;
                CONTINUE;
            END IF;
        ELSIF v_most IS NOT NULL THEN
            j := array_position(sorted, p_customers[i]);
            IF cardinality(recent[j]::timestamptz[]) >= v_most THEN
                refused[i] := true;
                CONTINUE;
            END IF;
            recent[j] := (recent[j]::timestamptz[] || p_now)::text;
            touched[j] := true;
        END IF;
        given := given + 1;
        got[i] := free_codes[given];
    END LOOP;
    IF given > 0 THEN
        UPDATE codes AS c
        SET customer_id = u.customer, issued_at = p_now, idempotency_key = u.key
        FROM unnest(got, p_customers, p_keys) AS u(code, customer, key)
        WHERE c.client_id = p_client_id AND c.code = u.code;
        IF v_most IS NOT NULL AND NOT counted THEN
            FOR j IN 1 .. cardinality(sorted) LOOP
                IF touched[j] THEN
                    UPDATE customer_quotas SET issued = recent[j]::timestamptz[]
                    WHERE client_id = p_client_id AND batch_id = p_batch_id
                      AND customer_id = sorted[j];
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF given < cardinality(free_seqs) THEN
        v_first := (SELECT min(s) FROM unnest(free_seqs[given + 1:]) AS s);
    ELSIF given > 0 THEN
        v_first := (SELECT max(s) + 1 FROM unnest(free_seqs) AS s);
    END IF;
    RETURN QUERY SELECT a.n, got[a.n], got[a.n] IS NOT NULL OR refused[a.n], v_first, true,
                        false, v_most, v_days, v_owner
                 FROM generate_series(1, asked) AS a(n);
END
$fn$;
"""


def _counting(kind: str) -> str:
    """PL/pgSQL of both functions: one claim (``kind`` "claim") or impression ("impression")
    counted on the player's row of each fresh ask (an upsert, rows in (player, offer) order),
    and ``counts`` set to each fresh ask's count after it, in the order of ``fresh``."""
    claims, impressions = (1, 0) if kind == "claim" else (0, 1)
    return f"""\
        FOR got_player, got_offer, got_count IN EXECUTE
            'INSERT INTO offer_players AS p (game_id, player_id, offer_id, claim_count, '
            || 'impression_count, last_{kind}_at) VALUES '
            || (SELECT string_agg(
                    format('(%L, %L, %L, {claims}, {impressions}, $1)',
                           p_game_id, p_players[k], p_offers[k]),
                    ', ' ORDER BY p_players[k], p_offers[k])
                FROM unnest(fresh) AS f(k))
            || ' ON CONFLICT (game_id, player_id, offer_id) DO UPDATE'
            || ' SET {kind}_count = p.{kind}_count + 1,'
            || ' last_{kind}_at = GREATEST(p.last_{kind}_at, excluded.last_{kind}_at)'
            || ' RETURNING p.player_id, p.offer_id, p.{kind}_count'
            USING p_now
        LOOP
            got_players := got_players || got_player;
            got_offers := got_offers || got_offer;
            got_counts := got_counts || got_count;
        END LOOP;
        counts := ARRAY(
            SELECT g.c FROM unnest(fresh) WITH ORDINALITY AS f(k, o)
            JOIN unnest(got_players, got_offers, got_counts) AS g(player, offer, c)
              ON g.player = p_players[f.k] AND g.offer = p_offers[f.k]
            ORDER BY f.o
        );"""  # noqa: S608 - names of this module, never input


# Claims on Citus, delegated whole to the worker holding the game's shard: one call per round
# (each transaction id and each (player, offer) once, as ``_in_rounds`` makes them) instead of
# a statement Citus plans as 5 steps on the coordinator. The rules match ``_CLAIMS``
# (promos/offers/counting.py): the request's ids claimed before are replays, answered from
# their first claim; every other ask counts one claim on its player's row (an upsert: the
# newest version, never a read-modify-write; rows locked in (player, offer) order), and is
# recorded under its unique (game, transaction id) key, in id order. A concurrent first use
# of an id makes the insert violate that key and the whole call fail; the caller runs it
# again, and then answers that ask as the replay it is. Each statement names the game (the
# distribution argument), so the worker runs them on its own shard. The two inserts are
# multi-row VALUES built each time (EXECUTE): an insert from a SELECT would be planned by
# Citus as steps again, and one statement per ask costs Citus' executor per statement. They
# name the game as a literal: Citus' forced delegation refused the parameter there ("queries
# must filter by the distribution argument"), the column being varchar(255).
CLAIM_FUNCTION = "promos_claim_offers"
CLAIM_FUNCTION_SIGNATURE = (
    f"{CLAIM_FUNCTION}(character varying, timestamptz, text[], uuid[], text[], integer[], "
    "bigint[], text[], integer[], bigint[])"
)
_CLAIM_FUNCTION_SQL = f"""\
CREATE OR REPLACE FUNCTION promos_claim_offers(
    p_game_id varchar, p_now timestamptz, p_players text[], p_offers uuid[],
    p_transactions text[], p_versions integer[], p_purchased bigint[], p_contents text[],
    p_caps integer[], p_next_ats bigint[]
) RETURNS TABLE (
    r_n integer, r_counted boolean, r_next_at bigint, r_earlier boolean,
    r_earlier_contents text, r_earlier_next_at bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    asked integer := cardinality(p_players);
    old_ids text[];
    old_contents text[];
    old_next_ats bigint[];
    fresh integer[];
    got_players text[] := '{{}}';
    got_offers uuid[] := '{{}}';
    got_counts integer[] := '{{}}';
    got_player text;
    got_offer uuid;
    got_count integer;
    counts integer[];
BEGIN
    SELECT coalesce(array_agg(c.transaction_id), '{{}}'),
           coalesce(array_agg(CAST(c.contents AS text)), '{{}}'),
           coalesce(array_agg(c.next_at), '{{}}')
      INTO old_ids, old_contents, old_next_ats
      FROM offer_claims AS c
      WHERE c.game_id = p_game_id AND c.transaction_id = ANY(p_transactions);
    fresh := ARRAY(SELECT a.n FROM generate_series(1, asked) AS a(n)
                   WHERE p_transactions[a.n] <> ALL(old_ids) ORDER BY a.n);
    IF cardinality(fresh) > 0 THEN
{_counting("claim")}
        EXECUTE
            'INSERT INTO offer_claims (game_id, transaction_id, player_id, offer_id, '
            || 'offer_version, purchased_at, claimed_at, contents, next_at) VALUES '
            || (SELECT string_agg(
                    format('(%L, %L, %L, %L, %L, %L, $1, CAST(%L AS jsonb), %L)',
                           p_game_id, p_transactions[f.k], p_players[f.k], p_offers[f.k],
                           p_versions[f.k], p_purchased[f.k], p_contents[f.k],
                           CASE WHEN p_caps[f.k] = 0 OR counts[f.o] < p_caps[f.k]
                                THEN p_next_ats[f.k] END),
                    ', ' ORDER BY p_transactions[f.k])
                FROM unnest(fresh) WITH ORDINALITY AS f(k, o))
            USING p_now;
    END IF;
    RETURN QUERY
        SELECT a.n, f.o IS NOT NULL,
               CASE WHEN f.o IS NOT NULL AND (p_caps[a.n] = 0 OR counts[f.o] < p_caps[a.n])
                    THEN p_next_ats[a.n] END,
               e.o IS NOT NULL, old_contents[e.o], old_next_ats[e.o]
        FROM generate_series(1, asked) AS a(n)
        LEFT JOIN unnest(fresh) WITH ORDINALITY AS f(k, o) ON f.k = a.n
        LEFT JOIN unnest(old_ids) WITH ORDINALITY AS e(id, o) ON e.id = p_transactions[a.n]
        ORDER BY a.n;
END
$fn$;
"""  # noqa: S608 - names of this module, never input
# Impressions on Citus, the same way (``_IMPRESSIONS``' rules): replays by impression id
# answered from the first, the others counted on their player's row and recorded.
SEE_FUNCTION = "promos_see_offers"
SEE_FUNCTION_SIGNATURE = (
    f"{SEE_FUNCTION}(character varying, timestamptz, text[], uuid[], uuid[], integer[], bigint[])"
)
_SEE_FUNCTION_SQL = f"""\
CREATE OR REPLACE FUNCTION promos_see_offers(
    p_game_id varchar, p_now timestamptz, p_players text[], p_offers uuid[],
    p_impressions uuid[], p_caps integer[], p_next_ats bigint[]
) RETURNS TABLE (
    r_n integer, r_counted boolean, r_next_at bigint, r_earlier boolean, r_earlier_next_at bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    asked integer := cardinality(p_players);
    old_ids uuid[];
    old_next_ats bigint[];
    fresh integer[];
    got_players text[] := '{{}}';
    got_offers uuid[] := '{{}}';
    got_counts integer[] := '{{}}';
    got_player text;
    got_offer uuid;
    got_count integer;
    counts integer[];
BEGIN
    SELECT coalesce(array_agg(i.impression_id), '{{}}'), coalesce(array_agg(i.next_at), '{{}}')
      INTO old_ids, old_next_ats
      FROM offer_impressions AS i
      WHERE i.game_id = p_game_id AND i.impression_id = ANY(p_impressions);
    fresh := ARRAY(SELECT a.n FROM generate_series(1, asked) AS a(n)
                   WHERE p_impressions[a.n] <> ALL(old_ids) ORDER BY a.n);
    IF cardinality(fresh) > 0 THEN
{_counting("impression")}
        EXECUTE
            'INSERT INTO offer_impressions (game_id, impression_id, player_id, offer_id, '
            || 'seen_at, next_at) VALUES '
            || (SELECT string_agg(
                    format('(%L, %L, %L, %L, $1, %L)',
                           p_game_id, p_impressions[f.k], p_players[f.k], p_offers[f.k],
                           CASE WHEN p_caps[f.k] = 0 OR counts[f.o] < p_caps[f.k]
                                THEN p_next_ats[f.k] END),
                    ', ' ORDER BY p_impressions[f.k])
                FROM unnest(fresh) WITH ORDINALITY AS f(k, o))
            USING p_now;
    END IF;
    RETURN QUERY
        SELECT a.n, f.o IS NOT NULL,
               CASE WHEN f.o IS NOT NULL AND (p_caps[a.n] = 0 OR counts[f.o] < p_caps[a.n])
                    THEN p_next_ats[a.n] END,
               e.o IS NOT NULL, old_next_ats[e.o]
        FROM generate_series(1, asked) AS a(n)
        LEFT JOIN unnest(fresh) WITH ORDINALITY AS f(k, o) ON f.k = a.n
        LEFT JOIN unnest(old_ids) WITH ORDINALITY AS e(id, o) ON e.id = p_impressions[a.n]
        ORDER BY a.n;
END
$fn$;
"""  # noqa: S608 - names of this module, never input

_HAS_CITUS = text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")
_PLACED = text(
    "SELECT logicalrelid::regclass::text AS name, partmethod::text FROM pg_dist_partition "
    "WHERE logicalrelid::regclass::text = ANY(:names)"
)


async def has_citus(conn: AsyncConnection) -> bool:
    """Whether the database has the Citus extension (False on SQLite)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool((await conn.execute(_HAS_CITUS)).scalar_one())


async def on_citus(conn: AsyncConnection) -> bool:
    """``has_citus``, asked once per pooled connection (kept in its ``info``)."""
    known = conn.info.get(_KNOWN)
    if known is None:
        known = conn.info[_KNOWN] = await has_citus(conn)
    return bool(known)


_KNOWN = "promos.citus"


async def placed(conn: AsyncConnection) -> dict[str, str]:
    """Promos' tables Citus knows, with their kind: ``distributed`` or ``reference``."""
    names = [*REFERENCE_TABLES, *(d.table for d in DISTRIBUTED_TABLES)]
    rows = await conn.execute(_PLACED, {"names": names})
    return {row.name: "reference" if row.partmethod == "n" else "distributed" for row in rows}


@dataclass(frozen=True, slots=True)
class ForeignKey:
    table: str
    name: str
    definition: str


# Citus refuses to distribute a table that a table still on the coordinator refers to: these
# keys are dropped before the tables are placed and made again once both sides are
# distributed (co-located, so that each shard's rows refer to their own shard's).
RESTORED_FOREIGN_KEYS = (
    ForeignKey(
        "pool_code_holds",
        "fk_pool_code_holds_client_id_codes",
        "FOREIGN KEY (client_id, code) REFERENCES codes (client_id, code)",
    ),
)


class NotCitus(Exception):
    """The database has no Citus extension."""


async def distribute(engine: AsyncEngine, *, shard_count: int | None = None) -> list[str]:
    """Make the reference tables and distribute the others (each once: run it again and it
    does only what is left); what it did, one line per table.

    ``shard_count``: shards per distributed table (Citus' own default, 32, when None).
    """
    done: list[str] = []
    async with engine.begin() as conn:
        if not await has_citus(conn):
            raise NotCitus("the database has no Citus extension (CREATE EXTENSION citus)")
        already = await placed(conn)
        # A transaction that wrote or read several shards at once (one connection per shard)
        # may not then write a reference table (Citus refuses: the reference table's copies
        # could not see those connections' rows). Promos' hot statements touch one shard each;
        # the few that touch many (adding codes, the console's counts) run shard by shard, on
        # one connection per worker. For sessions from now on.
        name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        await conn.execute(
            text(f'ALTER DATABASE "{name}" SET citus.multi_shard_modify_mode TO sequential')
        )
        if any(spec.table not in already for spec in DISTRIBUTED_TABLES):
            for key in RESTORED_FOREIGN_KEYS:
                await conn.execute(
                    text(f'ALTER TABLE "{key.table}" DROP CONSTRAINT IF EXISTS "{key.name}"')
                )
    # One table per transaction: Citus copies each table's rows to its shards as it goes.
    for table in REFERENCE_TABLES:
        if table not in already:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT create_reference_table(:t)"), {"t": table})
            done.append(f"{table}: reference table")
    for spec in DISTRIBUTED_TABLES:
        if spec.table in already:
            continue
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "SELECT create_distributed_table(:t, :c, colocate_with => :with"
                    + (", shard_count => :n)" if shard_count and not spec.colocate_with else ")")
                ),
                {
                    "t": spec.table,
                    "c": spec.column,
                    "with": spec.colocate_with or "none",
                    **({"n": shard_count} if shard_count and not spec.colocate_with else {}),
                },
            )
        done.append(f"{spec.table}: distributed by {spec.column}")
    done += await _restore_foreign_keys(engine)
    done += await _delegate(engine)
    return done


async def _restore_foreign_keys(engine: AsyncEngine) -> list[str]:
    done: list[str] = []
    async with engine.begin() as conn:
        for key in RESTORED_FOREIGN_KEYS:
            if not await _has_constraint(conn, key):
                await conn.execute(
                    text(f'ALTER TABLE "{key.table}" ADD CONSTRAINT "{key.name}" {key.definition}')
                )
                done.append(f"{key.table}: foreign key {key.name} made again")
    return done


@dataclass(frozen=True, slots=True)
class Delegated:
    """A function Citus sends whole to the worker holding its tenant's shard."""

    signature: str
    definition: str
    argument: str  # the distribution argument: the tenant's key
    colocate_with: str
    done: str  # what ``distribute`` says when it places it the first time


DELEGATED_FUNCTIONS = (
    Delegated(
        ISSUE_FUNCTION_SIGNATURE,
        _ISSUE_FUNCTION_SQL,
        "p_client_id",
        "codes",
        f"{ISSUE_FUNCTION}: delegated to the worker of its client's codes",
    ),
    Delegated(
        CLAIM_FUNCTION_SIGNATURE,
        _CLAIM_FUNCTION_SQL,
        "p_game_id",
        "games",
        f"{CLAIM_FUNCTION}: delegated to the worker of its game's players",
    ),
    Delegated(
        SEE_FUNCTION_SIGNATURE,
        _SEE_FUNCTION_SQL,
        "p_game_id",
        "games",
        f"{SEE_FUNCTION}: delegated to the worker of its game's players",
    ),
)


async def _delegate(engine: AsyncEngine) -> list[str]:
    """(Re)make the delegated functions and place each with its tenant's tables: Citus then
    sends a call naming a tenant to that tenant's worker whole, inside a transaction too
    (force_delegation). What it placed for the first time (each is made again all the same:
    its newest version)."""
    async with engine.begin() as conn:
        before = {
            spec.signature: bool(
                (await conn.execute(_DELEGATED, {"f": spec.signature})).scalar_one()
            )
            for spec in DELEGATED_FUNCTIONS
        }
        await conn.exec_driver_sql(_RECENT_FUNCTION_SQL)
        for spec in DELEGATED_FUNCTIONS:
            await conn.exec_driver_sql(spec.definition)
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT create_distributed_function(:f)"), {"f": _RECENT_FUNCTION_SIGNATURE}
        )
        for spec in DELEGATED_FUNCTIONS:
            await conn.execute(
                text(
                    "SELECT create_distributed_function(:f, distribution_arg_name => :arg, "
                    "colocate_with => :with, force_delegation => true)"
                ),
                {"f": spec.signature, "arg": spec.argument, "with": spec.colocate_with},
            )
    return [spec.done for spec in DELEGATED_FUNCTIONS if not before[spec.signature]]


_DELEGATED = text(
    "SELECT EXISTS (SELECT FROM pg_dist_object WHERE classid = 'pg_proc'::regclass "
    "AND objid = to_regprocedure(:f))"
)


async def delegated_issuing(conn: AsyncConnection) -> bool:
    """Whether ``promos citus distribute`` placed the issuing function (asked once per pooled
    connection): a database distributed before it keeps the statements' Citus forms."""
    return await _placed_function(conn, ISSUE_FUNCTION_SIGNATURE)


async def delegated_counting(conn: AsyncConnection) -> bool:
    """Whether ``promos citus distribute`` placed the claims' and the impressions' functions
    (asked once per pooled connection): a database distributed before them keeps the
    statements' Citus forms."""
    return await _placed_function(conn, CLAIM_FUNCTION_SIGNATURE) and await _placed_function(
        conn, SEE_FUNCTION_SIGNATURE
    )


async def _placed_function(conn: AsyncConnection, signature: str) -> bool:
    known: dict[str, bool] = conn.info.setdefault(_KNOWN_DELEGATED, {})
    if signature not in known:
        found = await conn.execute(_DELEGATED, {"f": signature})
        known[signature] = bool(found.scalar_one())
    return known[signature]


_KNOWN_DELEGATED = "promos.citus.delegated"


_CONSTRAINT = text(
    "SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = :name "
    "AND conrelid = CAST(:table AS regclass))"
)


async def _has_constraint(conn: AsyncConnection, key: ForeignKey) -> bool:
    return bool((await conn.execute(_CONSTRAINT, {"name": key.name, "table": key.table})).scalar())
