"""Go's ``time.ParseDuration``, which the Offers seed uses for ``period.every``/``frequency.every``.

"300ms", "-1.5h", "2h45m", "1h0m0.5s", "0": a sign, then one or more decimal numbers each with
a unit (ns, us, µs, μs, ms, s, m, h). Values are nanoseconds, as in Go.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from promos.errors import InvalidInput

NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Go's limit: an int64 of nanoseconds (about 290 years).
MAX_NANOSECONDS = 2**63 - 1

_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class InvalidDuration(InvalidInput):
    code = "invalid_duration"


def parse_duration(text: str) -> int:
    """Nanoseconds of a Go duration string; ``InvalidDuration`` if Go would refuse it."""
    rest = text
    sign = 1
    if rest[:1] in {"-", "+"}:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise InvalidDuration(f"invalid duration {text!r}: expected e.g. '300ms', '1.5h', '2h45m'")
    total = Decimal(0)
    position = 0
    while position < len(rest):
        match = _PART.match(rest, position)
        if match is None:
            raise InvalidDuration(
                f"invalid duration {text!r}: each number needs a unit "
                "(ns, us, µs, ms, s, m, h), e.g. '300ms', '1.5h', '2h45m'"
            )
        try:
            total += Decimal(match.group(1)) * NANOSECONDS[match.group(2)]
        except InvalidOperation:
            raise InvalidDuration(f"invalid duration {text!r}") from None
        position = match.end()
    nanoseconds = int(total)
    if nanoseconds > MAX_NANOSECONDS:
        raise InvalidDuration(f"invalid duration {text!r}: longer than about 290 years")
    return sign * nanoseconds
