"""Faults under load: a server killed, PostgreSQL restarted and down; every rule checked in SQL.

Run by hand (docs/operations.md), never in CI. Everything it kills or restarts it started
itself, on 127.0.0.1 only, and stops and removes at the end:

- its own PostgreSQL: ``initdb`` into a temporary folder with the binaries of
  ``/usr/lib/postgresql/<version>/bin`` (as the ``postgres`` user when run as root, since
  PostgreSQL refuses root), on a free port, listening on 127.0.0.1 only with trust, its socket
  in that folder. The machine's own PostgreSQL is never touched;
- two ``promos serve`` processes (one worker each) on free ports, on that PostgreSQL.

For the whole run it sends, bounded and concurrent: code issues (Ango's redeem and the native
issue route) under a rule of one code per customer, promo code redeems and offer claims. Each
operation is retried with its idempotency key (``Idempotency-Key``, the claim's
``transactionId``) after a connection error or a 503, on the other server first, until it has
a definite answer, as a careful client does. Meanwhile:

(a) one server is killed with SIGKILL and started again;
(b) PostgreSQL is restarted (a fast shutdown, then started again);
(c) PostgreSQL is stopped for 10 s, then started again.

Then it checks every rule in SQL, prints the recovery time after each fault (from the fault's
end to the first success of each kind of request) and a summary, and exits 1 if a rule failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from two_nodes import (
    CLIENT,
    Check,
    Process,
    Setup,
    check_counters,
    issued_codes,
    node_env,
    offer_claims,
    promocode_uses,
    promos,
    report,
    run_sql,
    set_up,
    start_node,
    stop,
    wait_healthy,
)

SERVERS = 2
IN_FLIGHT = 32  # operations under way at once, over both servers
WARM_UP_SECONDS = 5.0
BETWEEN_FAULTS_SECONDS = 6.0
DOWN_SECONDS = 10.0
MAX_OPS = 6000  # per kind: the load stops there even if the faults take longer than planned
RETRY_SECONDS = 0.2  # a client's pause before it retries (Promos' Retry-After says 1 s)
MAX_ATTEMPTS = 200  # 40 s of retries at the most, then the operation has no definite answer
REQUEST_SECONDS = 10.0
READY_SECONDS = 60.0
POLL_SECONDS = 0.1

KINDS = ("issue (Ango)", "issue (native)", "redeem", "claim")
SUCCESS = {
    "issue (Ango)": {200},
    "issue (native)": {201},
    "redeem": {201},
    "claim": {200, 409},  # 409: the replay of an attempt whose answer was lost
}
REFUSED = {"issue (Ango)": {403}, "issue (native)": {403}, "redeem": set(), "claim": set()}
CUSTOMERS = MAX_OPS  # issues draw customers from these: many ask twice, the rule refuses them
POOL = CUSTOMERS + 100  # never drained: a refusal is the rule's, never "no codes left"
PROMOCODES = 10
USES = 1_000_000
PLAYERS = 200
GAME = "faults"
DEFAULT_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql"))

STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- its own PostgreSQL ----------------------------------------------------------------------


@dataclass(slots=True)
class OwnPostgres:
    """A PostgreSQL cluster in ``folder`` that this script created and alone runs."""

    bin_dir: Path
    folder: Path
    port: int
    user: str | None  # run as this user (this script runs as root), or as the script's own
    process: Process | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def init(self) -> None:
        if self.user is not None:
            shutil.chown(self.folder, self.user, self.user)
        options = ["--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
        done = subprocess.run(
            self._as_user("initdb", "--no-instructions", "-D", str(self.folder / "data"), *options),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stderr.decode()}")

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        log = self.folder / "postgresql.log"
        settings = ["-p", str(self.port), "-c", "listen_addresses=127.0.0.1"]
        settings += ["-c", f"unix_socket_directories={self.folder}"]
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self._as_user("postgres", "-D", str(self.folder / "data"), *settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.process = Process(f"PostgreSQL :{self.port}", popen, log)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited:\n{log.read_text(errors='replace')[-3000:]}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"PostgreSQL did not accept connections within {READY_SECONDS} s")

    def stop(self) -> None:
        """A fast shutdown (SIGINT to its postmaster): sessions are ended, nothing is lost."""
        if self.process is not None:
            stop(self.process, signal.SIGINT)

    def _as_user(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        if self.user is None:
            return command
        # setpriv executes the program in its own process: the PID to signal is PostgreSQL's.
        user = f"--reuid={self.user}", f"--regid={self.user}", "--init-groups"
        return ["setpriv", *user, "--", *command]


# --- the Promos servers ----------------------------------------------------------------------


@dataclass(slots=True)
class Servers:
    env: dict[str, str]
    logs: Path
    ports: list[int] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.ports[n]}"

    def start(self, n: int) -> None:
        """Start server ``n`` (again) on its port; returns once it has started, not served."""
        process = start_node(self.ports[n], 1, self.env, self.logs)
        if n < len(self.processes):
            self.processes[n] = process
        else:
            self.processes.append(process)

    def healthy(self, n: int) -> None:
        wait_healthy(self.url(n), self.processes[n])

    def kill(self, n: int) -> None:
        """SIGKILL, by the PID of the process this script started."""
        self.processes[n].popen.send_signal(signal.SIGKILL)
        self.processes[n].popen.wait(timeout=READY_SECONDS)

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)

    def unhandled_errors(self) -> int:
        return sum(
            p.log.read_text(errors="replace").count("unhandled error") for p in self.processes
        )


# --- the load --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    kind: str
    server: int
    at: float  # time.monotonic() when answered, or when the connection failed
    status: int | None  # None: a connection error or a timeout


@dataclass(slots=True)
class Op:
    """One operation, however many attempts it took: its key and its definite answer."""

    kind: str
    key: str
    subject: str  # the customer, the promo code, the player
    status: int | None = None  # None: no definite answer within MAX_ATTEMPTS
    body: Any = None


class Load:
    """The operations, IN_FLIGHT at once, until told to stop (or MAX_OPS of each kind)."""

    def __init__(self, servers: Servers, api_key: str, setup: Setup) -> None:
        auth = {"Authorization": f"Bearer {api_key}"}
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        self._clients = [
            httpx.AsyncClient(
                base_url=servers.url(n), headers=auth, limits=limits, timeout=REQUEST_SECONDS
            )
            for n in range(len(servers.ports))
        ]
        self._setup = setup
        self._customers = [str(uuid.uuid4()) for _ in range(CUSTOMERS)]
        self._numbers = itertools.count()
        self.attempts: list[Attempt] = []
        self.ops: list[Op] = []

    async def run(self, until: asyncio.Event) -> None:
        await asyncio.gather(*(self._worker(until) for _ in range(IN_FLIGHT)))

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def _worker(self, until: asyncio.Event) -> None:
        while not until.is_set():
            n = next(self._numbers)
            if n >= MAX_OPS * len(KINDS):
                return
            await self._operate(n)

    async def _operate(self, n: int) -> None:
        kind = KINDS[n % len(KINDS)]
        op = Op(kind, str(uuid.uuid4()), "")
        method, path, body = self._request(op, n)
        headers = {} if kind == "claim" else {"Idempotency-Key": op.key}
        self.ops.append(op)
        for attempt in range(MAX_ATTEMPTS):
            # Operations alternate between the servers, and a retry goes to the other one.
            server = (n // len(KINDS) + attempt) % len(self._clients)
            try:
                response = await self._clients[server].request(
                    method, path, json=body, headers=headers
                )
            except httpx.TransportError:
                self.attempts.append(Attempt(kind, server, time.monotonic(), None))
            else:
                status = response.status_code
                self.attempts.append(Attempt(kind, server, time.monotonic(), status))
                if status != 503:
                    op.status, op.body = status, response.json()
                    return
            await asyncio.sleep(RETRY_SECONDS)

    def _request(self, op: Op, n: int) -> tuple[str, str, dict[str, Any]]:
        setup = self._setup
        body: dict[str, Any]
        if op.kind == "redeem":
            op.subject = random.choice(setup.promocodes)
            body = {"customer": f"buyer{n}@example.com", "products": []}
            return "POST", f"/v1/promocodes/{op.subject}/redeem", body
        if op.kind == "claim":
            op.subject = f"player-{n % PLAYERS}"
            body = {
                "gameId": GAME,
                "playerId": op.subject,
                "id": setup.offer_id,
                "timestamp": int(time.time()),
                "transactionId": op.key,
            }
            return "PUT", "/offers/claim", body
        op.subject = random.choice(self._customers)
        if op.kind == "issue (Ango)":
            body = {"batchid": setup.batch_id, "clientid": str(CLIENT), "customerid": op.subject}
            return "POST", "/api/v1/code/redeem", body
        body = {"client_id": str(CLIENT), "customer_id": op.subject}
        return "POST", f"/v1/batches/{setup.batch_id}/issues", body


# --- the faults ------------------------------------------------------------------------------


@dataclass(slots=True)
class Fault:
    name: str
    started: float
    ended: float = 0.0
    server: int | None = None  # recovery counts this server's answers only (a killed one)


async def inflict(servers: Servers, postgres: OwnPostgres) -> list[Fault]:
    """The three faults, one after the other, with load between them."""
    faults = []
    await asyncio.sleep(WARM_UP_SECONDS)

    victim = SERVERS - 1
    killed = Fault(f"server :{servers.ports[victim]} killed (-9), restarted", time.monotonic())
    killed.server = victim
    say(f"SIGKILL to server :{servers.ports[victim]}")
    await asyncio.to_thread(servers.kill, victim)
    await asyncio.to_thread(servers.start, victim)
    killed.ended = time.monotonic()
    say("server started again")
    await asyncio.to_thread(servers.healthy, victim)
    say("server healthy again")
    faults.append(killed)
    await asyncio.sleep(BETWEEN_FAULTS_SECONDS)

    restarted = Fault("PostgreSQL restarted", time.monotonic())
    say("PostgreSQL: fast shutdown")
    await asyncio.to_thread(postgres.stop)
    await asyncio.to_thread(postgres.start)
    restarted.ended = time.monotonic()
    say("PostgreSQL accepts connections again")
    faults.append(restarted)
    await asyncio.sleep(BETWEEN_FAULTS_SECONDS)

    down = Fault(f"PostgreSQL down {DOWN_SECONDS:.0f} s", time.monotonic())
    say("PostgreSQL: fast shutdown, down for a while")
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(DOWN_SECONDS)
    await asyncio.to_thread(postgres.start)
    down.ended = time.monotonic()
    say("PostgreSQL accepts connections again")
    faults.append(down)
    await asyncio.sleep(BETWEEN_FAULTS_SECONDS)
    return faults


async def drive(
    servers: Servers, postgres: OwnPostgres, api_key: str
) -> tuple[Setup, Load, list[Fault]]:
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=servers.url(0), headers=auth, timeout=120) as http:
        setup = await set_up(
            http, pool=POOL, promocodes=PROMOCODES, uses=USES, game=GAME, label="FAULTS"
        )
    load = Load(servers, api_key, setup)
    until = asyncio.Event()
    say(f"load: {IN_FLIGHT} operations at once over {SERVERS} servers")
    loading = asyncio.create_task(load.run(until))
    try:
        faults = await inflict(servers, postgres)
    finally:
        until.set()
        await loading
        await load.close()
    say(f"load stopped: {len(load.ops)} operations, {len(load.attempts)} attempts")
    return setup, load, faults


# --- the rules, in SQL -----------------------------------------------------------------------


async def check_rules(dsn: str, setup: Setup, load: Load) -> list[Check]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return [
            *check_answers(load),
            *await check_issues(conn, setup, load),
            *await check_redeems(conn, setup, load),
            *await check_claims(conn, load),
        ]
    finally:
        await conn.close()


def check_answers(load: Load) -> list[Check]:
    odd = Counter(
        (a.kind, a.status)
        for a in load.attempts
        if a.status not in SUCCESS[a.kind] | REFUSED[a.kind] | {503, None}
    )
    undecided = Counter(op.kind for op in load.ops if op.status is None)
    return [
        Check(
            "every answer a success, a rule's refusal, or a 503 / lost connection to retry",
            not odd,
            f"others: {dict(odd)}" if odd else "no 500, no other status",
        ),
        Check(
            f"every operation had a definite answer within {MAX_ATTEMPTS} attempts",
            not undecided,
            f"without one: {dict(undecided)}" if undecided else f"{len(load.ops)} operations",
        ),
    ]


def answered(load: Load, kinds: tuple[str, ...]) -> list[Op]:
    return [op for op in load.ops if op.kind in kinds and op.status in SUCCESS[op.kind]]


async def check_issues(conn: asyncpg.Connection, setup: Setup, load: Load) -> list[Check]:
    told = [(op.subject, op.body["code"]) for op in answered(load, KINDS[:2])]
    handed = Counter(code for _, code in told)
    twice = [code for code, n in handed.items() if n > 1]
    in_db = await issued_codes(conn, setup.batch_id)
    per_customer = Counter(in_db.values())
    over = {c: n for c, n in per_customer.items() if n > 1}
    return [
        Check(
            "no pool code issued twice",
            not twice,
            f"{len(told)} codes handed out in answers, {len(twice)} of them twice",
        ),
        Check(
            "every issue answered 200/201 is recorded in SQL, and nothing else is issued",
            in_db == {code: customer for customer, code in told},
            f"{len(in_db)} issued in SQL; "
            f"{len(set(in_db.items()) ^ {(code, customer) for customer, code in told})} differ",
        ),
        Check(
            "no customer over its limit (1 per customer)",
            not over,
            f"{len(per_customer)} customers hold a code; over the limit: {len(over)}; "
            f"refused by the rule: {sum(op.status == 403 for op in load.ops)}",
        ),
    ]


async def check_redeems(conn: asyncpg.Connection, setup: Setup, load: Load) -> list[Check]:
    ops = answered(load, ("redeem",))
    successes = Counter(op.subject for op in ops)
    rows = await promocode_uses(conn, setup.promocodes)
    wrong = [
        r["code"]
        for r in rows
        if not (r["uses"] - r["usage_count"] == r["redeemed"] == successes[r["code"]])
    ]
    ids = [op.body["id"] for op in ops]
    recorded = await conn.fetchval(
        "SELECT count(*) FROM promocode_redemptions WHERE id = ANY($1::bigint[])"
        " AND rolled_back_at IS NULL",
        ids,
    )
    return [
        Check(
            "promo code uses left == initial - successful redeems == redemptions in SQL",
            not wrong and len(rows) == PROMOCODES,
            f"{sum(successes.values())} successful redeems of {PROMOCODES} codes; "
            f"codes that disagree: {wrong[:5]}",
        ),
        Check(
            "every redeem answered 201 is recorded in SQL, once",
            recorded == len(ids) == len(set(ids)),
            f"{len(ids)} answered, {recorded} of their redemptions in SQL",
        ),
    ]


async def check_claims(conn: asyncpg.Connection, load: Load) -> list[Check]:
    claimed = {op.key for op in answered(load, ("claim",))}
    claims = await offer_claims(conn, GAME)
    in_db = claims.by_transaction
    return [
        Check(
            "each claim counted once: the transaction ids answered 200/409 are those in SQL",
            set(in_db) == claimed and max(in_db.values(), default=1) == 1,
            f"{len(claimed)} claims answered, {len(in_db)} transaction ids in SQL, "
            f"{in_db.total()} claim rows; replays answered 409: "
            f"{sum(op.status == 409 for op in load.ops if op.kind == 'claim')}",
        ),
        check_counters(claims),
    ]


# --- recovery --------------------------------------------------------------------------------


def recovery_table(faults: list[Fault], load: Load) -> list[str]:
    """Per fault and kind: seconds from the fault's end to the first success (on the restarted
    server for a kill), and the attempts that failed from the fault's start until then (of
    which after its end: on connections to the server that was gone)."""
    lines = [f"{'fault':<40} {'lasted':>7}  " + "  ".join(f"{kind:>28}" for kind in KINDS)]
    for fault in faults:
        cells = []
        for kind in KINDS:
            mine = [a for a in load.attempts if a.kind == kind]
            first = min(
                (
                    a.at
                    for a in mine
                    if a.at >= fault.ended
                    and a.status in SUCCESS[kind]
                    and fault.server in (None, a.server)
                ),
                default=None,
            )
            until = first if first is not None else float("inf")
            failed = [
                a.at for a in mine if fault.started <= a.at <= until and a.status in (None, 503)
            ]
            after = sum(at >= fault.ended for at in failed)
            seconds = f"{first - fault.ended:+.2f} s" if first is not None else "never"
            cells.append(f"{seconds} ({len(failed)} failed, {after} after)")
        lasted = f"{fault.ended - fault.started:.1f} s"
        lines.append(f"{fault.name:<40} {lasted:>7}  " + "  ".join(f"{c:>28}" for c in cells))
    return lines


def summary(load: Load, servers: Servers) -> list[str]:
    lines = []
    for kind in KINDS:
        finals = Counter(op.status for op in load.ops if op.kind == kind)
        answers = dict(sorted(finals.items(), key=str))
        tries = Counter(a.status for a in load.attempts if a.kind == kind)
        lines.append(
            f"{kind:<15} {finals.total():>6} operations, answers {answers}; {tries.total()} "
            f"attempts: {tries[503]} answered 503, {tries[None]} lost connections"
        )
    lines.append(f"server logs: {servers.unhandled_errors()} unhandled errors (500s)")
    return lines


# --- main ------------------------------------------------------------------------------------


def database_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as ``postgres``."""
    return "postgres" if os.geteuid() == 0 else None


def run(args: argparse.Namespace, folder: Path) -> int:
    postgres = OwnPostgres(args.pg_bin, folder, free_port(), database_user())
    with ExitStack() as stack:
        say(f"PostgreSQL of its own: initdb in {folder}, port {postgres.port}")
        postgres.init()
        postgres.start()
        stack.callback(postgres.stop)
        asyncio.run(run_sql(f"{postgres.dsn}/postgres", "CREATE DATABASE promos"))
        servers = Servers(node_env(f"{postgres.dsn}/promos"), folder)
        promos("migrate", env=servers.env)
        api_key = promos("api-keys", "create", "--name", "faults", env=servers.env).strip()
        servers.ports = [free_port() for _ in range(SERVERS)]
        stack.callback(servers.stop_all)
        for n in range(SERVERS):
            servers.start(n)
        for n in range(SERVERS):
            servers.healthy(n)
        say(f"servers on ports {servers.ports}")
        setup, load, faults = asyncio.run(drive(servers, postgres, api_key))
        checks = asyncio.run(check_rules(f"{postgres.dsn}/promos", setup, load))
        print("\nrecovery: from each fault's end to the first success of each kind", flush=True)
        for line in [*recovery_table(faults, load), "", *summary(load, servers), ""]:
            print(line, flush=True)
        held = report(checks, f"{time.monotonic() - STARTED:.0f} s")
    return 0 if held else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--pg-bin",
        type=Path,
        default=DEFAULT_BIN,
        help=f"PostgreSQL's binaries (initdb, postgres, pg_isready) [{DEFAULT_BIN}]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, data)")
    args = parser.parse_args()
    if not (args.pg_bin / "initdb").exists():
        print(f"no initdb in {args.pg_bin}: install PostgreSQL's server package, or --pg-bin")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="promos-faults-"))
    status = 1
    try:
        status = run(args, folder)
    finally:
        if status == 0 and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder} (server and PostgreSQL logs)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
