"""Reading code files: CSV with a header, one code per row, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.errors import InvalidCsv
from promos.codes.service import Batch, Rules, add_client_codes, create_batch
from promos.validation import has_control_character

MAX_CODE_LENGTH = 255


def bad_row(row: int, why: str) -> InvalidCsv:
    """The error of a file that cannot be taken, naming its row (the header is row 1)."""
    return InvalidCsv(f"row {row}: {why}", details={"row": row})


# A file names few clients: each distinct client_id text is read as a UUID once. Past this
# many distinct ones the cache starts again, so that memory stays flat whatever the file.
_CLIENT_CACHE_SIZE = 10_000

CodeRow = tuple[int, UUID | None, str]
"""A row of a code file: its row number, its client (None in a file of codes alone), its code."""


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
        if names == ["code"]:
            yield from _codes_alone(reader)
        else:
            yield from _codes_of_clients(reader)
    except csv.Error as exc:
        raise bad_row(reader.line_num, f"{exc}") from None


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """Each line as UTF-8 text; a byte-order mark is dropped, a bad byte names its row."""
    row = 1
    try:
        for raw in lines:
            yield raw.decode().removeprefix("\ufeff") if row == 1 else raw.decode()
            row += 1
    except UnicodeDecodeError:
        raise bad_row(row, "the file is not UTF-8 text") from None


# The loops below are the upload's hot path (a million rows in a few seconds): they check each
# row with as few Python steps as they can, and build nothing but the row's tuple.


def _codes_alone(reader: Any) -> Iterator[CodeRow]:
    for fields in reader:
        if len(fields) != 1:
            if not fields:
                continue
            raise bad_row(reader.line_num, f"expected 1 field(s), found {len(fields)}")
        code = fields[0].strip()
        if not code:
            if fields[0]:  # a line of blanks only: no code where one belongs
                raise bad_row(reader.line_num, "the code is empty")
            continue
        yield reader.line_num, None, _checked(reader.line_num, code)


def _codes_of_clients(reader: Any) -> Iterator[CodeRow]:
    clients: dict[str, UUID] = {}
    for fields in reader:
        if len(fields) != 2:  # noqa: PLR2004 - client_id and code
            if not fields or fields == [""]:
                continue
            raise bad_row(reader.line_num, f"expected 2 field(s), found {len(fields)}")
        text, code = fields
        client_id = clients.get(text)
        if client_id is None:
            client_id = _client(reader.line_num, text)
            if len(clients) >= _CLIENT_CACHE_SIZE:
                clients.clear()
            clients[text] = client_id
        yield reader.line_num, client_id, _checked(reader.line_num, code.strip())


def _client(line: int, text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise bad_row(line, f"client_id {text!r} is not a UUID") from None


def _checked(line: int, code: str) -> str:
    # ``isprintable`` (C, fast) is false for every hidden character and a few more (a
    # no-break space): only then does the exact check run.
    if not code:
        raise bad_row(line, "the code is empty")
    if not code.isprintable() and has_control_character(code):
        raise bad_row(line, "the code contains a control character")
    if len(code) > MAX_CODE_LENGTH:
        raise bad_row(line, f"the code is longer than {MAX_CODE_LENGTH} characters")
    return code


def _of_clients(rows: Iterable[CodeRow], owner: UUID) -> Iterator[tuple[int, UUID, str]]:
    """Each row's code with its client: the row's own, or the batch's for a file of codes."""
    for line, client_id, code in rows:
        yield line, owner if client_id is None else client_id, code


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
    owner = client_id or first[1]
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
