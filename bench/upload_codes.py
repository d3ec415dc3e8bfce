"""Benchmark uploading a code file through the API, against a plain COPY of the same rows.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/upload_codes.py [--codes 1000000] [--port 8390] [--codes-only]

1. Creates the database ``promos_bench_upload`` (dropping it first), migrates it, makes an API
   key, and writes a CSV file of ``--codes`` rows ``client_id,code`` (one client, random
   12-character codes in no order; ``--codes-only``: the header ``code`` alone) to bench/out/.
2. Ceiling: COPY of the same rows into ``codes`` itself (another batch and client, so the same
   codes are new), in one transaction, from a file in COPY's text format written before the
   clock starts (PostgreSQL parses it: no Python per row); then removes them and vacuums, so
   that the upload finds the table as the COPY did.
3. Promos: starts ``promos serve`` (one process) on ``--port``, creates a batch through
   ``POST /v1/batches``, and uploads the file to ``POST /v1/batches/{id}/codes`` from a client
   that streams it; samples the server's resident memory (VmRSS of its processes, from /proc)
   every 20 ms before and while the upload runs.
4. Prints both times and rates, the ratio, the target (<= 8 s), the server's memory before the
   upload and at its peak, then checks in SQL that the batch holds ``--codes`` codes.

Everything runs against 127.0.0.1; the load average is printed beside the figures (the
machine is shared: the ratio tells more than the time). Exit status 1 if the upload failed.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate_codes import (  # noqa: E402 - after the path is set
    create_database,
    load_average,
    promos_cli,
    promos_server,
)

HOST = "127.0.0.1"
DB_NAME = "promos_bench_upload"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
OUT = ROOT / "bench" / "out"
TARGET_SECONDS = 8.0
UPLOAD_SECONDS = 600.0
SAMPLE_SECONDS = 0.02
CODE_ALPHABET = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def random_codes(count: int) -> list[str]:
    """``count`` distinct random 12-character codes, in no order."""
    table = bytes(CODE_ALPHABET[b % len(CODE_ALPHABET)] for b in range(256))
    found: set[str] = set()
    while len(found) < count:
        raw = secrets.token_bytes(12 * (count - len(found))).translate(table).decode()
        found.update(raw[i : i + 12] for i in range(0, len(raw), 12))
    return list(found)[:count]


def write_csv(path: Path, client_id: UUID, codes: list[str], *, codes_only: bool) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        if codes_only:
            out.write("code\n")
            out.writelines(f"{code}\n" for code in codes)
        else:
            out.write("client_id,code\n")
            out.writelines(f"{client_id},{code}\n" for code in codes)


async def ceiling(client_id: UUID, codes: list[str]) -> float:
    """Seconds to COPY the rows (another batch and client) into ``codes`` and commit: COPY's
    own text format read by PostgreSQL from a file written before the clock starts."""
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        batch_id = uuid4()
        await conn.execute("INSERT INTO clients (id, created_at) VALUES ($1, now())", client_id)
        await conn.execute(
            "INSERT INTO batches (id, client_id, name, expired, created_at) "
            "VALUES ($1, $2, 'ceiling', false, now())",
            batch_id,
            client_id,
        )
        with tempfile.TemporaryFile() as rows:
            rows.writelines(
                f"{batch_id}\t{client_id}\t{code}\t{seq}\n".encode()
                for seq, code in enumerate(codes, start=1)
            )
            rows.seek(0)
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_to_table(
                    "codes", source=rows, columns=["batch_id", "client_id", "code", "seq"]
                )
            seconds = time.perf_counter() - started
        await conn.execute("DELETE FROM codes WHERE batch_id = $1", batch_id)
        await conn.execute("DELETE FROM batches WHERE id = $1", batch_id)
        await conn.execute("VACUUM ANALYZE codes")
        return seconds
    finally:
        await conn.close()


async def stored(batch_id: UUID) -> int:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM codes WHERE batch_id = $1", batch_id))
    finally:
        await conn.close()


def rss_kib(root: int) -> int:
    """Resident memory of ``root`` and its children (a server with workers), in KiB."""
    pids = [root]
    with suppress(OSError):
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        pids += [int(child) for child in children]
    total = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def upload(port: int, pid: int, client_id: UUID, path: Path) -> tuple[float, int, int, int, UUID]:
    """Seconds, HTTP status, RSS before and at peak (KiB), and the batch, of one upload."""
    key = promos_cli(BENCH_DSN, "api-keys", "create", "--name", "bench", "--role", "sales").split()[
        -1
    ]
    headers = {"Authorization": f"Bearer {key}"}
    base = f"http://{HOST}:{port}"
    with httpx.Client(base_url=base, headers=headers, timeout=UPLOAD_SECONDS) as client:
        made = client.post("/v1/batches", json={"client_id": str(client_id), "name": "upload"})
        made.raise_for_status()
        batch_id = UUID(made.json()["id"])
        time.sleep(0.5)  # let the server settle after its first requests
        before = rss_kib(pid)
        peak = before
        running = threading.Event()
        running.set()

        def sample() -> None:
            nonlocal peak
            while running.is_set():
                peak = max(peak, rss_kib(pid))
                time.sleep(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with path.open("rb") as file:
                started = time.perf_counter()
                response = client.post(
                    f"/v1/batches/{batch_id}/codes", files={"file": (path.name, file, "text/csv")}
                )
                seconds = time.perf_counter() - started
        finally:
            running.clear()
            sampler.join()
    if response.status_code != 201:
        print(f"upload answered {response.status_code}: {response.text[:500]}")
    return seconds, response.status_code, before, peak, batch_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8390)
    parser.add_argument("--codes-only", action="store_true")
    args = parser.parse_args()

    print(f"start: {load_average()}")
    asyncio.run(create_database(DB_NAME))
    promos_cli(BENCH_DSN, "migrate")
    client_id = uuid4()
    codes = random_codes(args.codes)
    OUT.mkdir(exist_ok=True)
    path = OUT / "upload_codes.csv"
    write_csv(path, client_id, codes, codes_only=args.codes_only)
    size = path.stat().st_size
    print(f"database {DB_NAME} migrated; file of {args.codes:,} rows, {size / 2**20:.1f} MiB")

    ceiling_s = asyncio.run(ceiling(uuid4(), codes))
    del codes
    with promos_server(BENCH_DSN, args.port) as pid:
        promos_s, status, before, peak, batch_id = upload(args.port, pid, client_id, path)
    count = asyncio.run(stored(batch_id))
    path.unlink()

    ceiling_rate, promos_rate = args.codes / ceiling_s, args.codes / promos_s
    print(f"ceiling (COPY of the same rows):  {ceiling_s:6.2f} s  {ceiling_rate:12,.0f} rows/s")
    print(f"promos upload (API, HTTP {status}):  {promos_s:6.2f} s  {promos_rate:12,.0f} rows/s")
    met = "met" if promos_s <= TARGET_SECONDS else "missed"
    print(
        f"ratio to the ceiling: {promos_rate / ceiling_rate:.2f}x; "
        f"time target <= {TARGET_SECONDS:.0f} s: {met}"
    )
    print(
        f"server RSS: {before / 1024:.0f} MiB before, {peak / 1024:.0f} MiB at peak "
        f"(+{(peak - before) / 1024:.0f} MiB)"
    )
    print(f"stored {count:,} codes in the batch; end: {load_average()}")
    return 0 if status == 201 and count == args.codes else 1


if __name__ == "__main__":
    sys.exit(main())
