"""The signature every delivery carries: ``Promos-Signature: t=<unix time>,v1=<hex>``.

``v1`` is the hex HMAC-SHA256, keyed with the secret, of ``"<t>.<body>"`` (the body's raw
bytes). A receiver recomputes it, compares in constant time, and refuses an old ``t``.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Promos-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, made within the tolerance of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
