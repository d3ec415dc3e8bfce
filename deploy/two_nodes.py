"""Two ``promos serve`` processes behind nginx on one PostgreSQL; concurrent load; rules in SQL.

Run by ``deploy/test_nginx_two_nodes.sh`` (see docs/deployment.md): it creates a fresh
database, migrates it, starts two Promos nodes on 127.0.0.1:8101 and :8102 and nginx with
``deploy/nginx/promos.conf`` on 127.0.0.1:8100 (its own prefix, pid and logs in a temporary
directory), then sends through nginx, all at once and bounded:

- code issues under a rule of one code per customer, more customers than codes, each
  customer asking several times at once (through the Ango and the native API);
- promo code redemptions, many more than each code's uses, racing for the last ones;
- offer claims with distinct transaction ids, each sent several times at once;

and restarts one node in the middle (SIGTERM, then a new process), as a rolling deployment
does. Then it checks in SQL that every rule held, prints PASS or FAIL for each, stops every
process it started (by PID), drops the database, and exits 1 if any rule failed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "promos.conf"
CONF_PORTS = (8100, 8101, 8102)  # nginx's, and the upstream of deploy/nginx/promos.conf
# PROMOS_NGINX_TEST_PORT moves nginx, and the nodes to the next two ports (a copy of the
# configuration with those ports is included instead).
NGINX_PORT = int(os.environ.get("PROMOS_NGINX_TEST_PORT", str(CONF_PORTS[0])))
NODE_PORTS = (NGINX_PORT + 1, NGINX_PORT + 2)
BASE = f"http://127.0.0.1:{NGINX_PORT}"
CLIENT = uuid.UUID("6f1c0c5e-2f47-4b8e-9d0b-4cbb2a1f7e11")
GAME = "nginx-two-nodes"

# The load: every number bounds a loop.
POOL = 400  # codes in the rule batch
CUSTOMERS = 500  # each wants one; only POOL get one
ATTEMPTS = 3  # each customer asks this many times at once
PROMOCODES = 20
USES = 5  # uses of each promo code
REDEEMS = 15  # redemptions tried on each promo code, at once
PLAYERS = 50
TRANSACTIONS = 4  # per player
REPLAYS = 3  # each transaction id sent this many times at once
IN_FLIGHT = 64  # requests through nginx at once
RESTART_AFTER = 0.3  # restart node 2 once this share of the requests has been answered

START_SECONDS = 90.0  # a loaded 2-core machine takes 15 s to start 2 workers
STOP_SECONDS = 40.0  # Promos' graceful shutdown allows 30 s for the requests in flight
POLL_SECONDS = 0.1

# Statuses: what a request that did its work, was refused by a rule, or failed (and changed
# nothing: a 502 is nginx's answer when a stopping node closed a connection it had not read).
FAILED = {502, 503, 504}
OK, CREATED, REPLAYED = 200, 201, 409


@dataclass(frozen=True, slots=True)
class Check:
    rule: str
    ok: bool
    detail: str


@dataclass(slots=True)
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass(slots=True)
class Answers:
    """Every answer of the load, and a count to trigger the restart on."""

    issues: list[tuple[str, int, str | None]] = field(
        default_factory=list
    )  # customer, status, code
    redeems: list[tuple[str, int]] = field(default_factory=list)  # promo code, status
    claims: list[tuple[str, str, int, str]] = field(
        default_factory=list
    )  # player, tx, status, body
    transport_errors: int = 0
    count: int = 0
    progressed: asyncio.Event = field(default_factory=asyncio.Event)
    restart_at: int = 0
    # Whether each answer, in the order they came, failed (a 5xx or a connection error), and
    # how many had come when the Citus worker was back.
    failures: list[bool] = field(default_factory=list)
    worker_back_at: int | None = None

    def one_more(self) -> None:
        self.count += 1
        if self.count >= self.restart_at:
            self.progressed.set()


# --- processes -------------------------------------------------------------------------------


def free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        # As servers do: connections of an earlier run waiting out TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOS_")}
    env.update(
        PROMOS_DATABASE_URL=database_url,
        # Start-up and shutdown lines in the nodes' logs; nginx's log has one line per request.
        PROMOS_LOG_LEVEL="info",
        PROMOS_ACCESS_LOG="false",
        # 2 nodes x 2 workers x (8 + 2) = 40 connections, well under max_connections (100).
        PROMOS_DB_POOL_SIZE="8",
        PROMOS_DB_MAX_OVERFLOW="2",
        # nginx on this host is the proxy whose X-Forwarded-For is believed.
        PROMOS_FORWARDED_ALLOW_IPS="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


def promos(*args: str, env: dict[str, str]) -> str:
    """Run a ``promos`` command to completion; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "promos", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promos {' '.join(args)} failed:\n{done.stderr.decode()}")
    return done.stdout.decode()


def start_node(port: int, workers: int, env: dict[str, str], logs: Path) -> Process:
    log = logs / f"node-{port}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promos",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Process(f"promos :{port}", popen, log)


def start_nginx(nginx: str, prefix: Path) -> Process:
    """nginx in the foreground with its own prefix, pid and logs; the config checked first."""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(exist_ok=True)
    included = NGINX_CONF
    if CONF_PORTS[0] != NGINX_PORT:
        included = prefix / "promos.conf"
        text = NGINX_CONF.read_text()
        for old, new in zip(CONF_PORTS, (NGINX_PORT, *NODE_PORTS), strict=True):
            text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        included.write_text(text)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_processes 2;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {included};
    access_log {prefix}/access.log promos;
}}
"""
    )
    base = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    tested = subprocess.run([*base, "-t"], capture_output=True, check=False)
    if tested.returncode != 0:
        raise RuntimeError(f"nginx -t refused the configuration:\n{tested.stderr.decode()}")
    log = prefix / "nginx.out"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [*base, "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    return Process(f"nginx :{NGINX_PORT}", popen, log)


def stop(process: Process, sig: signal.Signals = signal.SIGTERM) -> int:
    """Stop one process this script started, by its PID: ``sig``, then SIGKILL if it hangs."""
    if process.popen.poll() is None:
        process.popen.send_signal(sig)
    try:
        return process.popen.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"{process.name} (pid {process.popen.pid}) did not stop: killed", flush=True)
        process.popen.kill()
        return process.popen.wait(timeout=STOP_SECONDS)


def wait_healthy(url: str, process: Process) -> None:
    deadline = time.monotonic() + START_SECONDS
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited with {process.popen.returncode}:\n"
                    + process.log.read_text(errors="replace")[-4000:]
                )
            try:
                if http.get(f"{url}/healthcheck").status_code == OK:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{process.name} was not healthy within {START_SECONDS:.0f} s")


@dataclass(slots=True)
class Deployment:
    database_url: str
    workers: int
    env: dict[str, str]
    logs: Path
    nodes: dict[int, Process] = field(default_factory=dict)
    nginx: Process | None = None

    def restart(self, port: int) -> int:
        """A rolling restart of one node: SIGTERM, wait for it to finish, start a new one."""
        status = stop(self.nodes[port])
        self.nodes[port] = start_node(port, self.workers, self.env, self.logs)
        wait_healthy(f"http://127.0.0.1:{port}", self.nodes[port])
        return status


def stop_nodes(deployed: Deployment) -> None:
    for node in deployed.nodes.values():
        stop(node)


CLUSTER = ROOT / "deploy" / "citus" / "cluster.sh"


def cluster(*args: str, env: dict[str, str] | None = None) -> None:
    """deploy/citus/cluster.sh (PROMOS_CITUS_DIR and the rest from the environment)."""
    subprocess.run([str(CLUSTER), *args], check=True, env={**os.environ, **(env or {})})


@contextmanager
def deployment(
    admin_dsn: str, nginx: str, workers: int, keep: bool, *, citus: bool = False
) -> Iterator[Deployment]:
    """A fresh database, two nodes and nginx; every process stopped and the database dropped
    after (the temporary directory is kept when something failed, for its logs). ``citus``:
    ``admin_dsn`` is a cluster's coordinator (deploy/citus/cluster.sh): the database is made
    on every node and distributed."""
    prefix = Path(tempfile.mkdtemp(prefix="promos-nginx-"))
    prefix.chmod(0o755)  # nginx's workers (nobody) write request bodies under it
    name = f"promos_nginx_{uuid.uuid4().hex[:12]}"
    database_url = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    if citus:
        cluster("up", env={"PROMOS_CITUS_DBS": name})
    else:
        asyncio.run(run_sql(admin_dsn, f'CREATE DATABASE "{name}"'))
    ok = False
    try:
        with ExitStack() as stack:
            env = node_env(database_url)
            promos("migrate", env=env)
            if citus:
                promos("citus", "distribute", env=env)
            found = Deployment(database_url, workers, env, prefix)
            stack.callback(stop_nodes, found)
            for port in NODE_PORTS:
                found.nodes[port] = start_node(port, workers, env, prefix)
            for port, node in found.nodes.items():
                wait_healthy(f"http://127.0.0.1:{port}", node)
            found.nginx = start_nginx(nginx, prefix)
            # nginx finishes its requests on SIGQUIT; it is stopped before the nodes.
            stack.callback(stop, found.nginx, signal.SIGQUIT)
            wait_healthy(BASE, found.nginx)
            yield found
            ok = True
    finally:
        if not keep and citus:
            cluster("dropdb", name)
        elif not keep:
            asyncio.run(run_sql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if ok and not keep:
            shutil.rmtree(prefix, ignore_errors=True)
        else:
            print(f"logs kept in {prefix}", flush=True)


async def run_sql(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# --- the load --------------------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    batch_id: str
    promocodes: list[str]
    offer_id: str


async def set_up(
    http: httpx.AsyncClient,
    *,
    pool: int = POOL,
    promocodes: int = PROMOCODES,
    uses: int = USES,
    game: str = GAME,
    label: str = "NGINX",
) -> Setup:
    """A batch of ``pool`` codes under a rule of one per customer, ``promocodes`` promo codes of
    ``uses`` uses, a game with one offer: through ``http`` (nginx here, a node elsewhere)."""
    rules = {"max_per_customer": 1}
    batch = await made(
        http.post("/v1/batches", json={"client_id": str(CLIENT), "name": label, "rules": rules})
    )
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["code"])
    writer.writerows([f"{label[:3]}-{n:05d}"] for n in range(pool))
    files = {"file": ("codes.csv", rows.getvalue().encode(), "text/csv")}
    await made(http.post(f"/v1/batches/{batch['id']}/codes", files=files))
    generation = {
        "pattern": f"{label}-######",
        "count": promocodes,
        "discount_percentage": 10,
        "usage_count": uses,
    }
    generated = await made(http.post("/v1/promocodes", json=generation))
    await made(http.put(f"/games/{game}", json={"name": label.title()}))
    now = int(time.time())
    offer = {
        "name": "Gems",
        "gameId": game,
        "productId": f"com.{game}.gems",
        "contents": {"gems": 5},
        "placement": "store",
        "period": {"every": "", "max": 1000},
        "frequency": {"every": "", "max": 1000},
        "trigger": {"from": now - 3600, "to": now + 86400},
    }
    created = await made(http.post("/offers", json=offer))
    return Setup(batch["id"], generated["codes"], created["id"])


async def made(request: Awaitable[httpx.Response]) -> Any:
    """The JSON body of a set-up request that must succeed."""
    response = await request
    if response.status_code >= HTTPStatus.BAD_REQUEST:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


class Load:
    """The racing requests, sent through nginx, IN_FLIGHT at most at once."""

    def __init__(self, http: httpx.AsyncClient, setup: Setup, answers: Answers) -> None:
        self._http = http
        self._setup = setup
        self._answers = answers
        self._gate = asyncio.Semaphore(IN_FLIGHT)

    def units(self) -> list[list[Coroutine[Any, Any, None]]]:
        """Each unit's requests race each other (one customer's attempts, one code's
        redemptions, one transaction's replays); the units are shuffled together."""
        units = [
            [self.issue(customer, attempt) for attempt in range(ATTEMPTS)]
            for customer in (str(uuid.uuid4()) for _ in range(CUSTOMERS))
        ]
        units += [[self.redeem(code, n) for n in range(REDEEMS)] for code in self._setup.promocodes]
        units += [
            [self.claim(f"player-{p}", f"tx-{p}-{t}") for _ in range(REPLAYS)]
            for p in range(PLAYERS)
            for t in range(TRANSACTIONS)
        ]
        random.shuffle(units)
        return units

    async def issue(self, customer: str, attempt: int) -> None:
        batch_id = self._setup.batch_id
        if attempt % 2 == 0:  # the Ango API
            body = {"batchid": batch_id, "clientid": str(CLIENT), "customerid": customer}
            response = await self._send("POST", "/api/v1/code/redeem", body)
        else:  # the native API
            body = {"client_id": str(CLIENT), "customer_id": customer}
            response = await self._send("POST", f"/v1/batches/{batch_id}/issues", body)
        if response is not None:
            ok = response.status_code in {OK, CREATED}
            code = response.json()["code"] if ok else None
            self._answers.issues.append((customer, OK if ok else response.status_code, code))

    async def redeem(self, code: str, n: int) -> None:
        body = {"customer": f"buyer{n}@example.com", "products": []}
        response = await self._send("POST", f"/v1/promocodes/{code}/redeem", body)
        if response is not None:
            self._answers.redeems.append((code, response.status_code))

    async def claim(self, player: str, transaction: str) -> None:
        body = {
            "gameId": GAME,
            "playerId": player,
            "id": self._setup.offer_id,
            "timestamp": int(time.time()),
            "transactionId": transaction,
        }
        response = await self._send("PUT", "/offers/claim", body)
        if response is not None:
            self._answers.claims.append((player, transaction, response.status_code, response.text))

    async def _send(self, method: str, url: str, body: dict[str, Any]) -> httpx.Response | None:
        async with self._gate:
            try:
                response = await self._http.request(method, url, json=body)
            except httpx.TransportError:
                self._answers.transport_errors += 1
                self._answers.failures.append(True)
                return None
            else:
                self._answers.failures.append(response.status_code in FAILED)
                return response
            finally:
                self._answers.one_more()


async def drive(
    deployed: Deployment, api_key: str, *, citus_worker: str | None = None
) -> tuple[Setup, Answers, int]:
    """Set up, send the whole load through nginx, restart node 2 in the middle of it (and,
    with ``citus_worker``, that Citus worker at the same moment)."""
    answers = Answers()
    total = CUSTOMERS * ATTEMPTS + PROMOCODES * REDEEMS + PLAYERS * TRANSACTIONS * REPLAYS
    answers.restart_at = int(total * RESTART_AFTER)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=BASE, headers=headers, limits=limits, timeout=60) as http:
        setup = await set_up(http)
        load = Load(http, setup, answers)

        async def restart_node() -> int:
            await answers.progressed.wait()
            print(f"restarting node :{NODE_PORTS[1]} after {answers.count} answers", flush=True)
            status = await asyncio.to_thread(deployed.restart, NODE_PORTS[1])
            print(f"node :{NODE_PORTS[1]} back after {answers.count} answers", flush=True)
            return status

        async def restart_worker(worker: str) -> None:
            await answers.progressed.wait()
            print(f"restarting Citus {worker} after {answers.count} answers", flush=True)
            await asyncio.to_thread(cluster, "restart", worker)
            answers.worker_back_at = answers.count
            print(f"Citus {worker} back after {answers.count} answers", flush=True)

        restarting = asyncio.create_task(restart_node())
        worker = asyncio.create_task(restart_worker(citus_worker)) if citus_worker else None
        await asyncio.gather(*(asyncio.gather(*unit) for unit in load.units()))
        restarted = await restarting
        if worker is not None:
            await worker
    return setup, answers, restarted


# --- the rules, in SQL -----------------------------------------------------------------------


async def check_rules(
    database_url: str, setup: Setup, answers: Answers, access_log: Path
) -> list[Check]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return [
            *check_statuses(answers),
            *await check_issues(conn, setup, answers),
            *await check_redeems(conn, setup, answers),
            *await check_claims(conn, answers),
            check_both_nodes(access_log),
            *([check_recovery(answers)] if answers.worker_back_at is not None else []),
        ]
    finally:
        await conn.close()


# Requests already on their way when the worker came back may still fail (a pooled connection
# to the coordinator that had lost its worker connection is replaced on its next use).
SETTLING = IN_FLIGHT * 2


def check_recovery(answers: Answers) -> Check:
    """After the Citus worker was back (and the requests then in flight), nothing failed."""
    back = answers.worker_back_at or 0
    during = sum(answers.failures[:back])
    settling = sum(answers.failures[back : back + SETTLING])
    after = answers.failures[back + SETTLING :]
    return Check(
        "Promos recovered by itself once the Citus worker was back: no failure after",
        bool(after) and not any(after),
        f"failed before the worker was back: {during}; in the next {SETTLING} answers: "
        f"{settling}; in the {len(after)} answers after: {sum(after)}",
    )


def check_statuses(answers: Answers) -> list[Check]:
    expected = (
        ("issues", Counter(s for _, s, _ in answers.issues), {200, 403, 409}),
        ("redeems", Counter(s for _, s in answers.redeems), {201, 409}),
        ("claims", Counter(s for _, _, s, _ in answers.claims), {200, 409}),
    )
    checks = []
    for what, statuses, allowed in expected:
        odd = {s: n for s, n in statuses.items() if s not in allowed | FAILED}
        checks.append(
            Check(
                f"every {what} answer is a success, a rule's refusal or a failure to retry",
                not odd,
                f"{dict(sorted(statuses.items()))}; connection errors: {answers.transport_errors}",
            )
        )
    return checks


async def check_issues(conn: asyncpg.Connection, setup: Setup, answers: Answers) -> list[Check]:
    told = [(customer, code) for customer, status, code in answers.issues if status == OK]
    handed = Counter(code for _, code in told)
    twice = [code for code, n in handed.items() if n > 1]
    in_db = await issued_codes(conn, setup.batch_id)
    per_customer = Counter(in_db.values())
    over = {c: n for c, n in per_customer.items() if n > 1}
    failed = sum(s in FAILED for _, s, _ in answers.issues) + answers.transport_errors
    return [
        Check(
            "no code issued twice",
            not twice and len(in_db) == len(told),
            f"{len(told)} codes handed out, {len(in_db)} issued in SQL, {len(twice)} twice",
        ),
        Check(
            "every code issued in SQL reached its customer, and only those",
            in_db == {code: customer for customer, code in told},
            f"{len(set(in_db.items()) ^ {(c, u) for u, c in told})} differences",
        ),
        Check(
            "no customer over the rule (1 per customer)",
            not over,
            f"{len(per_customer)} customers hold a code; over the rule: {len(over)}",
        ),
        Check(
            "the pool was drained, nothing lost",
            len(in_db) == min(POOL, CUSTOMERS),
            f"{len(in_db)} of {POOL} codes issued to {CUSTOMERS} customers ({failed} failed)",
        ),
    ]


async def issued_codes(conn: asyncpg.Connection, batch_id: str) -> dict[str, str]:
    """Each code of the batch that was issued, and to whom."""
    rows = await conn.fetch(
        "SELECT code, customer_id FROM codes WHERE batch_id = $1 AND issued_at IS NOT NULL",
        uuid.UUID(batch_id),
    )
    return {row["code"]: row["customer_id"] for row in rows}


async def promocode_uses(conn: asyncpg.Connection, codes: list[str]) -> list[asyncpg.Record]:
    """Per promo code: ``code``, ``usage_count`` (left), ``uses`` (initial), ``redeemed``
    (redemptions recorded and not rolled back)."""
    return await conn.fetch(
        "SELECT p.code, p.usage_count, g.usage_count AS uses,"
        " (SELECT count(*) FROM promocode_redemptions r"
        "  WHERE r.promocode_id = p.id AND r.rolled_back_at IS NULL) AS redeemed"
        " FROM promocodes p JOIN promocode_generations g ON g.id = p.generation_id"
        " WHERE p.code = ANY($1::text[])",
        codes,
    )


@dataclass(frozen=True, slots=True)
class ClaimsInSQL:
    by_transaction: Counter[str]  # claim rows per transaction id
    per_player: Counter[str]  # claim rows per player
    counters: dict[str, int]  # each player's claim counter


async def offer_claims(conn: asyncpg.Connection, game: str) -> ClaimsInSQL:
    """The game's claims as the database holds them."""
    rows = await conn.fetch(
        "SELECT transaction_id, player_id FROM offer_claims WHERE game_id = $1", game
    )
    counters = {
        row["player_id"]: row["claim_count"]
        for row in await conn.fetch(
            "SELECT player_id, claim_count FROM offer_players WHERE game_id = $1", game
        )
    }
    return ClaimsInSQL(
        Counter(row["transaction_id"] for row in rows),
        Counter(row["player_id"] for row in rows),
        counters,
    )


def check_counters(claims: ClaimsInSQL) -> Check:
    return Check(
        "each player's claim counter == its claims",
        claims.counters == dict(claims.per_player),
        f"{sum(claims.counters.values())} counted, {claims.by_transaction.total()} claim rows",
    )


async def check_redeems(conn: asyncpg.Connection, setup: Setup, answers: Answers) -> list[Check]:
    rows = await promocode_uses(conn, setup.promocodes)
    successes = Counter(code for code, status in answers.redeems if status == CREATED)
    negative = [r["code"] for r in rows if r["usage_count"] < 0]
    wrong = [
        r["code"]
        for r in rows
        if not (r["uses"] - r["usage_count"] == r["redeemed"] == successes[r["code"]])
    ]
    return [
        Check(
            "usage_count never below zero",
            not negative and len(rows) == PROMOCODES,
            f"lowest uses left: {min((r['usage_count'] for r in rows), default=None)}",
        ),
        Check(
            "uses taken == redemptions recorded == successful redeems",
            not wrong,
            f"{sum(successes.values())} successful redeems of {PROMOCODES} codes x {USES} uses; "
            f"codes that disagree: {wrong[:5]}",
        ),
    ]


async def check_claims(conn: asyncpg.Connection, answers: Answers) -> list[Check]:
    by_tx: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for _, tx, status, body in answers.claims:
        by_tx[tx].append((status, body))
    claims = await offer_claims(conn, GAME)
    in_db = claims.by_transaction
    answered = {tx for tx, got in by_tx.items() if any(s in {200, 409} for s, _ in got)}
    not_once = [
        tx for tx, got in by_tx.items() if sum(s == OK for s, _ in got) != (1 if tx in in_db else 0)
    ]
    replies_differ = [
        tx for tx, got in by_tx.items() if len({body for s, body in got if s in {200, 409}}) > 1
    ]
    return [
        Check(
            "each transaction id claimed exactly once (one 200, replays 409)",
            set(in_db) == answered and max(in_db.values(), default=1) == 1 and not not_once,
            f"{len(in_db)} claims in SQL for {len(answered)} answered transaction ids; "
            f"not exactly once: {not_once[:5]}",
        ),
        Check(
            "replays answer what the first claim answered",
            not replies_differ,
            f"transaction ids with differing answers: {replies_differ[:5]}",
        ),
        check_counters(claims),
    ]


def report(checks: list[Check], how: str) -> bool:
    """Print PASS or FAIL for each rule, then how many held (and ``how``); whether all did."""
    for check in checks:
        print(f"{'PASS' if check.ok else 'FAIL'}  {check.rule}: {check.detail}", flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} rules held ({how})", flush=True)
    return not failed


def check_both_nodes(access_log: Path) -> Check:
    upstreams = Counter(re.findall(r"upstream=([\d.:]+)", access_log.read_text()))
    served = {f"127.0.0.1:{port}" for port in NODE_PORTS}
    return Check(
        "both nodes served requests through nginx",
        served <= set(upstreams),
        str(dict(upstreams)),
    )


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "PROMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL whose user may create databases [PROMOS_TEST_POSTGRES_URL]",
    )
    parser.add_argument(
        "--citus",
        action="store_true",
        help="--postgres is a Citus coordinator of deploy/citus/cluster.sh: distribute the "
        "database, and restart a Citus worker mid-load too",
    )
    parser.add_argument("--citus-worker", default="worker2", help="the worker to restart")
    parser.add_argument("--workers", type=int, default=2, help="workers per node [2]")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()
    for port in (NGINX_PORT, *NODE_PORTS):
        if not free(port):
            print(f"port {port} is in use on 127.0.0.1: stop what listens there first")
            return 2

    started = time.monotonic()
    with deployment(
        args.postgres, args.nginx, args.workers, args.keep, citus=args.citus
    ) as deployed:
        api_key = promos("api-keys", "create", "--name", "nginx-two-nodes", env=deployed.env)
        worker = args.citus_worker if args.citus else None
        setup, answers, restarted = asyncio.run(
            drive(deployed, api_key.strip(), citus_worker=worker)
        )
        checks = asyncio.run(
            check_rules(deployed.database_url, setup, answers, deployed.logs / "access.log")
        )
        checks.append(
            Check(
                f"node :{NODE_PORTS[1]} stopped gracefully mid-load (SIGTERM) and came back",
                restarted in {0, -signal.SIGTERM},
                f"exit status {restarted}",
            )
        )
        held = report(checks, f"{answers.count} requests in {time.monotonic() - started:.0f} s")
        if not held:
            raise SystemExit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
