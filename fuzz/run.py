"""``make fuzz``: schemathesis over the whole OpenAPI document, against a real server.

A fresh PostgreSQL database, a ``promos serve`` on a free port of 127.0.0.1, data seeded
through the API (a batch with codes, promo codes, a game with offers, a referral program, a
webhook, specials, a brand user) so that generated requests reach past "not found", then:

1. every operation but those that sign out or disable the caller, with an admin API key;
2. those (``DELETE /v1/auth/tokens/current``, ``/v1/users/{id}``, ``/v1/api-keys/{id}``),
   last, with a fresh credential for each call (``fuzz/hooks.py``), so that what one call
   revokes is never what the next call uses.

It fails on any 5xx, and on any answer the document does not allow: an undocumented status,
a body that does not match its schema, another content type or missing headers. Bounded in
time (``--seconds``, 100 by default); the database is dropped and the server stopped after.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
# The operations that sign out or disable the caller: the second phase, with a fresh
# credential for each call.
CALLER_OPERATIONS = (
    ("DELETE", "/v1/auth/tokens/current"),
    ("DELETE", "/v1/users/{user_id}"),
    ("DELETE", "/v1/api-keys/{key_id}"),
)
ADMIN = "fuzz-admin"
SIGNER = "fuzz-signer"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on ``server_url``'s server, dropped after."""
    name = f"promos_fuzz_{uuid.uuid4().hex[:12]}"
    admin = make_url(server_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def running_server(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``promos serve`` on 127.0.0.1:``port`` until the block ends."""
    subprocess.run([BIN / "promos", "migrate"], env=env, check=True, cwd=ROOT)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [BIN / "promos", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        sys.exit(
            f"seeding failed: {response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
    return response.json() if response.content else None


def seed(url: str, password: str, signer_password: str) -> tuple[str, dict[str, list[Any]]]:
    """Data for every domain, made through the API: an admin API key, and the seeded values
    of each parameter (schemathesis draws from them half the time, so that it gets past 404)."""
    with httpx.Client(base_url=url, auth=(ADMIN, password), timeout=30) as basic:
        key = _ok(basic.post("/v1/api-keys", json={"name": "fuzz", "role": "admin"}))["key"]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as api:
        _ok(api.post("/v1/users", json={"username": SIGNER, "password": signer_password}))
        client_id = str(uuid.uuid4())
        rules = {"max_per_customer": 3}
        batch = _ok(
            api.post("/v1/batches", json={"client_id": client_id, "name": "fuzz", "rules": rules})
        )
        csv = "code\n" + "".join(f"FUZZ{n:06d}\n" for n in range(500))
        upload = {"file": ("codes.csv", io.BytesIO(csv.encode()), "text/csv")}
        _ok(api.post(f"/v1/batches/{batch['id']}/codes", files=upload))
        issue = {"client_id": client_id, "customer_id": "customer-1"}
        _ok(api.post(f"/v1/batches/{batch['id']}/issues", json=issue))
        held = {"client_id": client_id, "customer_id": "customer-2", "order": "fuzz-order"}
        pool_hold = _ok(api.post(f"/v1/batches/{batch['id']}/holds", json=held))
        generate = {"pattern": "FZ-######", "count": 50, "discount_percentage": 10}
        made = _ok(api.post("/v1/promocodes", json={**generate, "usage_count": 5}))
        use = {"customer": "someone@example.com", "products": []}
        redemption = _ok(api.post(f"/v1/promocodes/{made['codes'][1]}/redeem", json=use))
        _ok(api.put("/v1/games/fuzzgame", json={"name": "Fuzz game"}))
        offer = {
            "name": "Starter pack",
            "product_id": "starter",
            "contents": {"gems": 100},
            "placement": "shop",
            "period": {"every": "24h", "max": 1},
            "frequency": {"every": "1h", "max": 3},
            "trigger": {"from": 0, "to": 1000},
        }
        offer_id = _ok(api.post("/v1/games/fuzzgame/offers", json=offer))["id"]
        terms = {"name": "fuzz", "credit_value": 10, "target_value": 100}
        program = _ok(api.post("/v1/referral-programs", json=terms))
        _ok(api.post("/v1/referrals", json={"referrer": "alice", "referred": "bob"}))
        _ok(api.put("/v1/referral-users/bob/payments", json={"total_amount_paid": 150}))
        # With the dispatcher off, nothing is ever sent to this address.
        hook = {"url": "https://hooks.example.com/promos", "events": ["*"]}
        webhook = _ok(api.post("/v1/webhooks", json={**hook, "secret": secrets.token_hex(16)}))
        special = {"sku": "SKU-1", "title": "Half off", "discount_percentage": 50}
        special_id = _ok(api.post("/v1/specials", json=special))["id"]
        upgrade = {"from_sku": "SKU-1", "to_sku": "SKU-2", "title": "Pro", "discount_amount": 5}
        upgrade_id = _ok(api.post("/v1/upgrade-programs", json=upgrade))["id"]
        _ok(api.post("/v1/brand-users", json={"user_id": "fuzz-brand-user"}))
        brand = {"brand_id": 1, "number_of_codes": 20}
        _ok(api.post("/discounts/api/v1.0/generate", json=brand))
    codes = made["codes"][2:12]
    values: dict[str, list[Any]] = {
        "path.batch_id": [batch["id"]],
        "query.batch_id": [batch["id"]],
        "query.client_id": [client_id],
        "body.client_id": [client_id],
        "body.batchid": [batch["id"]],
        "body.clientid": [client_id],
        "path.customer_id": ["customer-1"],
        "path.code": codes,
        "path.id": codes,
        "path.search": ["FZ"],
        "path.game_id": ["fuzzgame"],
        "query.game-id": ["fuzzgame"],
        "body.gameId": ["fuzzgame"],
        "path.offer_id": [offer_id],
        "query.offer-id": [offer_id],
        "body.offerId": [offer_id],
        "path.program_id": [program["id"], upgrade_id],
        "body.program_id": [program["id"]],
        "body.upgrade_program_id": [upgrade_id],
        "path.special_id": [special_id],
        "path.sku": ["SKU-1"],
        "path.user_hash": ["alice", "bob"],
        "body.user_indicator": ["alice"],
        "path.subscription_id": [webhook["id"]],
        "path.redemption_id": [redemption["id"]],
        "path.hold_id": [pool_hold["id"]],
        "path.brand_id": [1],
        "path.user_id": ["fuzz-brand-user"],
    }
    return str(key), values


def config_file(values: dict[str, list[Any]], path: Path) -> Path:
    """schemathesis.toml: each seeded parameter drawn from its values half the time."""
    lines = [
        f"[dictionaries.seeded{n}]\nvalues = {json.dumps(found)}\n"
        for n, found in enumerate(values.values())
    ]
    lines.append("[parameters]")
    lines.extend(
        f'"{name}" = {{ dictionary = "seeded{n}", probability = 0.5 }}'
        for n, name in enumerate(values)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def operation_ids(url: str) -> dict[tuple[str, str], str]:
    document = httpx.get(url + "/openapi.json", timeout=30).json()
    return {
        (method.upper(), path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def schemathesis(
    url: str, *, config: Path, seconds: int, args: list[str], env: dict[str, str], report: Path
) -> int:
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        url + "/openapi.json",
        "--checks",
        CHECKS,
        "--max-time",
        str(seconds),
        # One worker: the server has the other core. (Two also trip a race in Python 3.11's
        # ast module, through Hypothesis, as an "AST constructor recursion depth mismatch".)
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *args,
    ]
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode


def _unhandled(log: Path) -> Iterator[str]:
    """The server's unhandled errors: the line that says where, and the exception's last."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("level") == "error":
            last = entry.get("exception", "").strip().splitlines()[-1:] or [""]
            yield f"{entry.get('message')}: {last[0]}"


_STARTED = time.monotonic()


def log_step(done: str) -> None:
    print(f"[make fuzz] {time.monotonic() - _STARTED:5.0f} s: {done}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=100, help="time for the first phase")
    parser.add_argument("--caller-seconds", type=int, default=20, help="for the second")
    parser.add_argument("--seed", type=int, help="schemathesis' random seed")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PROMOS_FUZZ_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server where a database may be created",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".fuzz", help="logs and reports")
    options = parser.parse_args()
    options.out.mkdir(exist_ok=True)
    started = time.monotonic()
    password, signer_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with fresh_database(options.postgres) as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOS_")}
        env.update(
            PROMOS_DATABASE_URL=database_url,
            PROMOS_ADMIN_USER=ADMIN,
            PROMOS_ADMIN_PASSWORD=password,
            PROMOS_LOG_LEVEL="warning",
            PROMOS_ACCESS_LOG="false",
            # Nothing is left to finish when the run stops the server.
            PROMOS_SHUTDOWN_TIMEOUT_SECONDS="1",
            # No delivery leaves the machine: the subscriptions point nowhere near it.
            PROMOS_WEBHOOK_DISPATCHER="false",
            # The run is one client: limits would answer 429s instead of reaching the routes.
            PROMOS_RATE_LIMIT_PUBLIC="0",
            PROMOS_RATE_LIMIT_SIGNIN_PER_CLIENT="0",
            PROMOS_RATE_LIMIT_SIGNIN_PER_LOGIN="0",
        )
        port = free_port()
        log = options.out / "server.log"
        with running_server(env, port, log) as url:
            log_step("database made and migrated, server started")
            key, values = seed(url, password, signer_password)
            config = config_file(values, options.out / "schemathesis.toml")
            log_step("data seeded")
            ids = operation_ids(url)
            seed_args = ["--seed", str(options.seed)] if options.seed is not None else []
            st_env = {
                **env,
                "PYTHONPATH": str(ROOT),
                "SCHEMATHESIS_HOOKS": "fuzz.hooks",
                "PROMOS_FUZZ_URL": url,
                "PROMOS_FUZZ_PASSWORD": signer_password,
                "PROMOS_FUZZ_ADMIN_KEY": key,
            }
            excluded = [
                arg for op in CALLER_OPERATIONS for arg in ("--exclude-operation-id", ids[op])
            ]
            failed = schemathesis(
                url,
                config=config,
                seconds=options.seconds,
                args=[*excluded, *seed_args],
                env={**st_env, "PROMOS_FUZZ_CREDENTIAL": "static"},
                report=options.out / "junit-main.xml",
            )
            log_step("first phase: every other operation")
            included = [
                arg for op in CALLER_OPERATIONS for arg in ("--include-operation-id", ids[op])
            ]
            failed |= schemathesis(
                url,
                config=config,
                seconds=options.caller_seconds,
                args=[*included, *seed_args],
                env={**st_env, "PROMOS_FUZZ_CREDENTIAL": "fresh"},
                report=options.out / "junit-caller.xml",
            )
            log_step("second phase: the operations that sign out or disable the caller")
        errors = Counter(_unhandled(log))
        if errors:
            print(f"\nthe server logged unhandled errors (tracebacks in {log}):")
            for message, count in errors.most_common():
                print(f"{count:6} {message}")
    print(f"\nmake fuzz: {time.monotonic() - started:.0f} s, {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
