"""Drawing codes from a pattern: ``#`` is one character of the charset, the rest is literal.

Randomness comes from ``os.urandom`` (the operating system's cryptographic source), mapped to
the charset by rejection sampling, so that every character is equally likely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from math import ceil

from promos.promocodes.errors import InvalidPattern

PLACEHOLDER = "#"
# No 0/O, no 1/I/L: nothing a customer could misread when typing the code.
DEFAULT_CHARSET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MAX_CODE_LENGTH = 64
MAX_COUNT = 1_000_000
# A generation may use at most this share of its pattern's space: beyond it, collisions with
# the codes already drawn would make generation crawl (or never finish).
MAX_FILL = 0.25
_CHARSET = re.compile(r"[A-Za-z0-9]+")
_LITERAL = re.compile(r"[A-Za-z0-9._~-]*")
_RUN = re.compile(r"(#+)([^#]*)")


@dataclass(frozen=True, slots=True)
class CodeShape:
    """A checked pattern: literal runs around ``#`` runs, and the charset they draw from."""

    pattern: str
    charset: str
    prefix: str
    postfix: str

    @property
    def drawn(self) -> int:
        """How many characters of each code are drawn at random."""
        return self.pattern.count(PLACEHOLDER)

    @property
    def capacity(self) -> int:
        """How many different codes the pattern can make."""
        return int(len(self.charset) ** self.drawn)

    def most_codes(self) -> int:
        """The largest generation this pattern allows (a fixed code: exactly one)."""
        return 1 if self.drawn == 0 else int(self.capacity * MAX_FILL)


def code_shape(pattern: str, charset: str, prefix: str = "", postfix: str = "") -> CodeShape:
    """Check a pattern, charset, prefix and postfix; ``InvalidPattern`` says what to fix."""
    if not pattern:
        raise InvalidPattern("pattern must not be empty: use # for each drawn character")
    if not _LITERAL.fullmatch(pattern.replace(PLACEHOLDER, "")):
        raise InvalidPattern(
            "pattern may hold # (a drawn character), letters, digits and . _ ~ - only"
        )
    for name, part in (("prefix", prefix), ("postfix", postfix)):
        if not _LITERAL.fullmatch(part):
            raise InvalidPattern(f"{name} may hold letters, digits and . _ ~ - only")
    length = len(prefix) + len(pattern) + len(postfix)
    if length > MAX_CODE_LENGTH:
        raise InvalidPattern(f"a code would be {length} characters long: at most {MAX_CODE_LENGTH}")
    if not _CHARSET.fullmatch(charset):
        raise InvalidPattern("charset may hold letters and digits only, and not be empty")
    if len(set(charset)) != len(charset):
        raise InvalidPattern("charset must not repeat a character")
    if PLACEHOLDER in pattern and len(charset) < 2:  # noqa: PLR2004 - one character is no draw
        raise InvalidPattern("charset needs at least 2 characters")
    return CodeShape(pattern, charset, prefix, postfix)


def check_capacity(shape: CodeShape, count: int) -> None:
    """Refuse, up front, a count the pattern cannot make quickly (or at all)."""
    if not 1 <= count <= MAX_COUNT:
        raise InvalidPattern(f"count must be from 1 to {MAX_COUNT}")
    most = shape.most_codes()
    if count > most:
        if shape.drawn == 0:
            raise InvalidPattern(
                f"pattern {shape.pattern!r} has no # and so makes one code only, not {count}"
            )
        raise InvalidPattern(
            f"pattern {shape.pattern!r} over a charset of {len(shape.charset)} characters "
            f"makes {shape.capacity} different codes; a generation may use at most "
            f"{int(MAX_FILL * 100)}% of them ({most}), not {count}: "
            "add # to the pattern or characters to the charset"
        )


class Drawer:
    """Draws codes of one shape, fast: one ``os.urandom`` call per batch of codes."""

    def __init__(self, shape: CodeShape) -> None:
        self._shape = shape
        size = len(shape.charset)
        # Bytes below ``limit`` map evenly onto the charset; the others are thrown away.
        limit = 256 - 256 % size
        self._table = bytes(ord(shape.charset[b % size]) if b < limit else 0 for b in range(256))
        self._rejected = bytes(range(limit, 256))
        self._accept = limit / 256
        self._parts = _parts(shape)
        # Each position of a code: its literal character, or None where one is drawn.
        code = shape.prefix + shape.pattern + shape.postfix
        self._template = [None if c == PLACEHOLDER else c.encode("ascii") for c in code]
        self._width = len(code)

    def draw(self, n: int) -> list[str]:
        """``n`` codes (not checked for uniqueness)."""
        shape = self._shape
        k = shape.drawn
        head, runs = self._parts
        if k == 0:
            return [head] * n
        if runs[0][0] == 0:
            chars = self._random_bytes(n * k).decode("ascii")
            tail = runs[0][1]
            return [f"{head}{chars[i : i + k]}{tail}" for i in range(0, n * k, k)]
        text = self._laid_out(n).decode("ascii")
        width = self._width
        return [text[i : i + width] for i in range(0, n * width, width)]

    def draw_sorted(self, n: int) -> Iterator[list[str]]:
        """``n`` codes drawn as ``draw`` draws them, given in code order, a run at a time.

        The codes are grouped by their first drawn characters: how many fall in each group
        is counted from ``n`` drawn characters (exactly as ``n`` draws would spread), and
        each group, drawn and sorted, holds at most about ``SORTED_RUN`` codes. Code order
        lets PostgreSQL add the codes to its indexes in one sweep instead of at random.
        """
        yield from _sorted_runs(self._shape, n)

    def _laid_out(self, n: int) -> bytes:
        """``n`` codes of a pattern of several ``#`` runs, end to end: each position of the
        code is filled for all ``n`` codes at once (a slice with a step, in C)."""
        k = self._shape.drawn
        raw = self._random_bytes(n * k)
        width = self._width
        out = bytearray(n * width)
        drawn = 0
        for position, literal in enumerate(self._template):
            if literal is None:
                out[position::width] = raw[drawn::k]
                drawn += 1
            else:
                out[position::width] = literal * n
        return bytes(out)

    def _random_bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            want = n - len(out)
            raw = os.urandom(ceil(want / self._accept) + 16)
            out += raw.translate(self._table, self._rejected)
        return out[:n]


SORTED_RUN = 50_000


def _sorted_runs(shape: CodeShape, n: int) -> Iterator[list[str]]:
    if n <= SORTED_RUN or shape.drawn <= 1:
        codes = Drawer(shape).draw(n)
        codes.sort()
        yield codes
        return
    firsts = Drawer(shape)._random_bytes(n)  # noqa: SLF001 - the same class's draw
    for char in sorted(shape.charset):
        count = firsts.count(char.encode("ascii"))
        if count:
            fixed = replace(shape, pattern=shape.pattern.replace(PLACEHOLDER, char, 1))
            yield from _sorted_runs(fixed, count)


def _parts(shape: CodeShape) -> tuple[str, list[tuple[int, str]]]:
    """The literal text before the first ``#``, then (width of a ``#`` run, literal after it).

    The prefix joins the head and the postfix the last literal, so that a code is built by
    appending slices. A single run is marked with width 0: its slice is the whole draw.
    """
    pattern = shape.pattern
    first = pattern.find(PLACEHOLDER)
    if first < 0:
        return shape.prefix + pattern + shape.postfix, []
    head = shape.prefix + pattern[:first]
    runs = [(len(m.group(1)), m.group(2)) for m in _RUN.finditer(pattern, first)]
    width, literal = runs[-1]
    runs[-1] = (width, literal + shape.postfix)
    if len(runs) == 1:
        return head, [(0, runs[0][1])]
    return head, runs
