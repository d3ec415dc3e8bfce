"""Drawing codes from a pattern: ``#`` is one character of the charset, the rest is literal.

Randomness comes from ``os.urandom`` (the operating system's cryptographic source), mapped to
the charset by rejection sampling, so that every character is equally likely.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
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

    def draw(self, n: int) -> list[str]:
        """``n`` codes (not checked for uniqueness)."""
        shape = self._shape
        k = shape.drawn
        head, runs = self._parts
        if k == 0:
            return [head] * n
        chars = self._random_chars(n * k)
        if runs[0][0] == 0:
            tail = runs[0][1]
            return [f"{head}{chars[i : i + k]}{tail}" for i in range(0, n * k, k)]
        codes: list[str] = []
        append = codes.append
        for i in range(0, n * k, k):
            pieces = [head]
            offset = i
            for width, literal in runs:
                pieces.append(chars[offset : offset + width])
                pieces.append(literal)
                offset += width
            append("".join(pieces))
        return codes

    def _random_chars(self, n: int) -> str:
        out = b""
        while len(out) < n:
            want = n - len(out)
            raw = os.urandom(ceil(want / self._accept) + 16)
            out += raw.translate(self._table, self._rejected)
        return out[:n].decode("ascii")


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
