"""Reading code files: CSV with a header, one code per row, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.errors import InvalidCsv
from promos.codes.service import Batch, Rules, add_client_codes, create_batch
from promos.validation import has_control_character

MAX_CODE_LENGTH = 255


def bad_row(row: int, why: str) -> InvalidCsv:
    """The error of a file that cannot be taken, naming its row (the header is row 1)."""
    return InvalidCsv(f"row {row}: {why}", details={"row": row})


@dataclass(frozen=True, slots=True)
class CodeRow:
    line: int
    client_id: UUID | None
    code: str


def read_rows(lines: Iterable[bytes]) -> Iterator[CodeRow]:
    """Rows of a file whose header is ``client_id,code`` or just ``code``.

    Rows are numbered as a spreadsheet shows them: the header is row 1. Blank lines are
    skipped; anything else malformed fails with ``InvalidCsv`` naming the row.
    """
    reader = csv.reader(_decoded(lines), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise bad_row(1, "the file is empty: it needs a header row client_id,code")
        names = [h.strip().lower() for h in header]
        if names not in (["client_id", "code"], ["code"]):
            raise bad_row(
                1, f"the header must be client_id,code (or code), not {','.join(header)!r}"
            )
        with_client = names == ["client_id", "code"]
        for fields in reader:
            line = reader.line_num
            if not fields or fields == [""]:
                continue
            yield _row(line, fields, with_client)
    except csv.Error as exc:
        raise bad_row(reader.line_num, f"{exc}") from None


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """Each line as UTF-8 text; a byte-order mark is dropped, a bad byte names its row."""
    for row, raw in enumerate(lines, start=1):
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise bad_row(row, "the file is not UTF-8 text") from None
        yield text.removeprefix("\ufeff") if row == 1 else text


def _row(line: int, fields: list[str], with_client: bool) -> CodeRow:
    expected = 2 if with_client else 1
    if len(fields) != expected:
        raise bad_row(line, f"expected {expected} field(s), found {len(fields)}")
    client_id: UUID | None = None
    if with_client:
        try:
            client_id = UUID(fields[0].strip())
        except ValueError:
            raise bad_row(line, f"client_id {fields[0]!r} is not a UUID") from None
    code = fields[-1].strip()
    if not code:
        raise bad_row(line, "the code is empty")
    if has_control_character(code):
        raise bad_row(line, "the code contains a control character")
    if len(code) > MAX_CODE_LENGTH:
        raise bad_row(line, f"the code is longer than {MAX_CODE_LENGTH} characters")
    return CodeRow(line, client_id, code)


def _of_clients(rows: Iterable[CodeRow], owner: UUID) -> Iterator[tuple[int, UUID, str]]:
    """Each row's code with its client: the row's own, or the batch's for a file of codes."""
    for row in rows:
        yield row.line, owner if row.client_id is None else row.client_id, row.code


async def import_batch(
    conn: AsyncConnection,
    lines: Iterable[bytes],
    *,
    name: str,
    rules: Rules,
    now: datetime,
    client_id: UUID | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[Batch, int]:
    """Create a batch from a code file; each code keeps its row's client.

    The batch's own client is ``client_id``, else the file's first row's; rows without a
    client (a file of codes alone) are its codes.
    """
    rows = read_rows(lines)
    first = next(rows, None)
    if first is None:
        raise bad_row(2, "the file has no codes, only a header")
    owner = client_id or first.client_id
    if owner is None:
        raise bad_row(1, "the header must be client_id,code (the file names no client otherwise)")
    batch = await create_batch(conn, client_id=owner, name=name, rules=rules, now=now)
    added = await add_client_codes(
        conn, batch, _of_clients(chain([first], rows), owner), now=now, on_progress=on_progress
    )
    return batch, added


async def import_into(
    conn: AsyncConnection,
    batch: Batch,
    lines: Iterable[bytes],
    *,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Add a code file's codes to an existing batch; each keeps its row's client (the batch's
    own for a file of codes alone). ``now``: when a client new to Promos is known from."""
    return await add_client_codes(
        conn,
        batch,
        _of_clients(read_rows(lines), batch.client_id),
        now=now,
        on_progress=on_progress,
    )
