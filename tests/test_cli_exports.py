"""``promos batches``, ``codes export`` and ``promocodes`` list/show/delete/export: the same
services and CSV as the API, read back and compared."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit.tables import audit_log
from promos.codes import holds
from promos.codes import service as codes
from promos.codes.issue import issue_codes
from promos.codes.service import Batch, IssuedCode, IssueRequest, Rules
from promos.promocodes import service as promocodes
from promos.promocodes.service import Generated, GenerationSpec, PromocodeFilter
from tests.test_cli import failed_cleanly, promos, query

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CLIENT = UUID("6f1c8f55-2f1a-4c55-9a55-0b6f4d0e8e21")
SPEC = GenerationSpec(pattern="####-####", count=3, usage_count=2, discount_percentage=Decimal(20))


def make_batch(database_url: str, *, size: int = 3, name: str = "Summer") -> Batch:
    async def make(conn: AsyncConnection) -> Batch:
        batch = await codes.create_batch(
            conn, client_id=CLIENT, name=name, rules=Rules(2, 30), now=NOW
        )
        await codes.add_codes(conn, batch, ((n + 2, f"{name}-{n}") for n in range(size)))
        return batch

    return query(database_url, make)


def generate(database_url: str, **overrides: Any) -> Generated:
    spec = replace(SPEC, **overrides)
    return query(database_url, lambda conn: promocodes.generate(conn, spec=spec, now=NOW))


async def issue(conn: AsyncConnection, request: IssueRequest) -> IssuedCode:
    [outcome] = await issue_codes(conn, [request], [None], now=NOW)
    assert isinstance(outcome, IssuedCode), outcome
    return outcome


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def actions(database_url: str) -> list[tuple[str, str]]:
    async def read(conn: AsyncConnection) -> list[tuple[str, str]]:
        rows = await conn.execute(select(audit_log.c.actor_kind, audit_log.c.action))
        return [(row.actor_kind, row.action) for row in rows]

    return query(database_url, read)


# --- batches -----------------------------------------------------------------------------------


def test_batches_list_shows_each_batch(database_url):
    first = make_batch(database_url, name="Summer")
    second = make_batch(database_url, name="Winter")

    result = promos(database_url, "batches", "list", "--json")

    assert result.exit_code == 0, result.output
    assert sorted(b["id"] for b in json_lines(result.stdout)) == sorted(
        [str(first.id), str(second.id)]
    )


def test_batches_list_in_a_table_names_the_batches(database_url):
    batch = make_batch(database_url, name="Summer")

    result = promos(database_url, "batches", "list")

    assert result.exit_code == 0, result.output
    assert str(batch.id) in result.stdout
    assert "Summer" in result.stdout


def test_batches_show_gives_the_rules_and_the_counts(database_url):
    batch = make_batch(database_url, size=3)

    result = promos(database_url, "batches", "show", str(batch.id), "--json")

    assert result.exit_code == 0, result.output
    [shown] = json_lines(result.stdout)
    assert shown["rules"] == {"max_per_customer": 2, "time_limit_days": 30}
    assert (shown["stats"]["total"], shown["stats"]["left"]) == (3, 3)


def test_batches_expire_stops_the_batch_and_is_audited(database_url):
    batch = make_batch(database_url)

    result = promos(database_url, "batches", "expire", str(batch.id))

    assert result.exit_code == 0, result.output
    assert query(database_url, lambda conn: codes.get_batch(conn, batch.id)).expired
    assert actions(database_url) == [("cli", "batch.expire")]


def test_batches_end_lapsed_holds_ends_them_and_burns_their_codes(database_url):
    batch = make_batch(database_url, size=2)

    async def hold(conn: AsyncConnection) -> int:
        held = await holds.hold_code(
            conn,
            batch_id=batch.id,
            client_id=CLIENT,
            customer_id="customer-1",
            order="order-1",
            ttl=timedelta(minutes=1),
            now=NOW,  # long gone: the command reads the real clock
        )
        return held.id

    hold_id = query(database_url, hold)

    result = promos(database_url, "batches", "end-lapsed-holds")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ended 1 lapsed hold"
    ended = query(database_url, lambda conn: holds.get_hold(conn, hold_id, now=NOW))
    assert (ended.status, ended.returned) == ("expired", False)


def test_batches_show_an_unknown_batch_fails_cleanly(database_url):
    result = promos(database_url, "batches", "show", str(UUID(int=7)))

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert "does not exist" in result.output


# --- codes export ------------------------------------------------------------------------------


def test_codes_export_writes_the_batchs_codes_to_the_file(database_url, tmp_path):
    batch = make_batch(database_url, size=4)
    issued = query(database_url, lambda conn: issue(conn, IssueRequest(batch.id, CLIENT, "alice")))
    out = tmp_path / "codes.csv"

    result = promos(database_url, "codes", "export", str(batch.id), "-o", str(out))

    assert result.exit_code == 0, result.output
    rows = csv_rows(out.read_text(encoding="utf-8"))
    assert sorted(r["code"] for r in rows) == [f"Summer-{n}" for n in range(4)]
    [alice] = [r for r in rows if r["customer_id"]]
    assert (alice["code"], alice["customer_id"]) == (issued.code, "alice")
    assert alice["issued_at"] == NOW.isoformat()
    assert "wrote 4 codes" in result.stderr


def test_codes_export_without_a_file_writes_the_csv_to_stdout(database_url):
    batch = make_batch(database_url, size=2)

    result = promos(database_url, "codes", "export", str(batch.id))

    assert result.exit_code == 0, result.output
    assert [r["code"] for r in csv_rows(result.stdout)] == ["Summer-0", "Summer-1"]


def test_codes_export_of_an_unknown_batch_fails_and_writes_no_file(database_url, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "codes.csv"

    result = promos(database_url, "codes", "export", str(UUID(int=7)), "-o", str(out))

    assert failed_cleanly(result), (result.exit_code, result.output, result.exception)
    assert list(out.parent.iterdir()) == []


def test_codes_import_is_audited_as_the_ango_upload_is(database_url, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("code\nA-1\nA-2\n", encoding="utf-8")

    promos(database_url, "codes", "import", str(path), "--batch", "S", "--client", str(CLIENT))

    assert actions(database_url) == [("cli", "batch.import")]


# --- promo codes -------------------------------------------------------------------------------


def test_promocodes_generate_writes_every_code_to_the_file(database_url, tmp_path):
    out = tmp_path / "generated.csv"

    result = promos(
        database_url,
        *("promocodes", "generate", "--pattern", "####-####", "--count", "2500"),
        *("--percentage", "20", "-o", str(out)),
    )

    assert result.exit_code == 0, result.output
    rows = csv_rows(out.read_text(encoding="utf-8"))
    stored = query(
        database_url,
        lambda conn: promocodes.list_promocodes(conn, filters=PromocodeFilter(), limit=3000),
    )
    assert [r["code"] for r in rows] == [p.code for p in stored]
    assert len(rows) == 2500
    assert {Decimal(r["discount_percentage"]) for r in rows} == {Decimal(20)}
    assert "2500 codes written to" in result.stdout


def test_promocodes_generate_to_stdout_writes_only_the_csv_there(database_url):
    result = promos(
        database_url, "promocodes", "generate", "--pattern", "####", "--count", "5",
        "--amount", "10", "-o", "-",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert len(csv_rows(result.stdout)) == 5
    assert "5 codes written to standard output" in result.stderr


def test_promocodes_generate_json_prints_the_generation(database_url):
    result = promos(
        database_url, "promocodes", "generate", "--pattern", "####", "--count", "4",
        "--percentage", "15", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [generation] = json_lines(result.stdout)
    assert (generation["count"], generation["discount_percentage"]) == (4, "15")


def test_promocodes_generate_is_audited_as_a_generation(database_url):
    promos(database_url, "promocodes", "generate", "--pattern", "####", "--percentage", "15")

    assert actions(database_url) == [("cli", "promocode_generation.create")]


def test_promocodes_list_filters_as_the_api_does(database_url):
    generate(database_url, count=2)
    amounts = generate(database_url, count=2, discount_percentage=None, discount_amount=Decimal(5))

    result = promos(database_url, "promocodes", "list", "--kind", "amount", "--json")

    assert result.exit_code == 0, result.output
    assert sorted(p["code"] for p in json_lines(result.stdout)) == sorted(amounts.codes)


def test_promocodes_list_stops_at_the_limit(database_url):
    generate(database_url, count=5)

    result = promos(database_url, "promocodes", "list", "--limit", "2", "--json")

    assert len(json_lines(result.stdout)) == 2


def test_promocodes_show_and_delete(database_url):
    [code, *_] = generate(database_url).codes

    shown = promos(database_url, "promocodes", "show", code, "--json")
    deleted = promos(database_url, "promocodes", "delete", code)
    again = promos(database_url, "promocodes", "show", code)

    assert json_lines(shown.stdout)[0]["usage_count"] == 2
    assert deleted.exit_code == 0, deleted.output
    assert failed_cleanly(again)
    assert actions(database_url) == [("cli", "promocode.delete")]


def test_promocodes_export_by_generation_reads_back_every_code(database_url, tmp_path):
    generate(database_url, count=4)
    wanted = generate(database_url, count=3, usage_by="Ann@Example.com")
    out = tmp_path / "codes.csv"

    result = promos(
        database_url,
        *("promocodes", "export", "--generation", str(wanted.generation.id), "-o", str(out)),
    )

    assert result.exit_code == 0, result.output
    rows = csv_rows(out.read_text(encoding="utf-8"))
    assert sorted(r["code"] for r in rows) == sorted(wanted.codes)
    assert {r["usage_by"] for r in rows} == {"ann@example.com"}


def test_promocodes_export_filters_as_the_list_does(database_url):
    generate(database_url, count=2, pattern="AA-####")
    generate(database_url, count=2, pattern="BB-####")

    exported = promos(database_url, "promocodes", "export", "--search", "bb-")
    listed = promos(database_url, "promocodes", "list", "--search", "bb-", "--json")

    assert [r["code"] for r in csv_rows(exported.stdout)] == [
        p["code"] for p in json_lines(listed.stdout)
    ]
    assert len(csv_rows(exported.stdout)) == 2


def test_redemptions_export_reads_back_the_redemptions(database_url, tmp_path):
    [code, *_] = generate(database_url).codes
    done = query(
        database_url,
        lambda conn: promocodes.redeem(
            conn, code=code, customer="ann@example.com", skus=[], now=NOW
        ),
    )
    out = tmp_path / "redemptions.csv"

    result = promos(
        database_url,
        *("promocodes", "redemptions", "export", "--since", "2026-03-01", "-o", str(out)),
    )

    assert result.exit_code == 0, result.output
    assert csv_rows(out.read_text(encoding="utf-8")) == [
        {
            "id": str(done.id),
            "code": code,
            "customer": "ann@example.com",
            "idempotency_key": "",
            "redeemed_at": NOW.isoformat(),
            "rolled_back_at": "",
        }
    ]


def test_redemptions_export_until_leaves_out_later_ones(database_url):
    [code, *_] = generate(database_url).codes
    query(
        database_url,
        lambda conn: promocodes.redeem(conn, code=code, customer="a@example.com", skus=[], now=NOW),
    )

    result = promos(
        database_url, "promocodes", "redemptions", "export", "--until", "2026-03-01T11:00:00"
    )

    assert result.exit_code == 0, result.output
    assert csv_rows(result.stdout) == []


def test_an_export_to_a_file_leaves_no_partial_file_beside_it(database_url, tmp_path: Path):
    generate(database_url, count=3)
    (tmp_path / "out").mkdir()

    promos(database_url, "promocodes", "export", "-o", str(tmp_path / "out" / "all.csv"))

    assert [p.name for p in (tmp_path / "out").iterdir()] == ["all.csv"]
