"""How every delivery is signed: Standard Webhooks, and Promos' own earlier header.

Standard Webhooks (https://www.standardwebhooks.com/), which receivers in any language verify
with ready libraries:

- ``webhook-id``: the message's id, the same on every attempt and replay of it;
- ``webhook-timestamp``: the attempt's time, in Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

The HMAC key is the secret's bytes: the base64 after ``whsec_`` for a secret of that form
(what Promos generates), else the secret's UTF-8 bytes (a "raw" secret, which the libraries
also take, e.g. Python's ``Webhook(secret.encode())``).

``Promos-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, keyed with the
secret's UTF-8 bytes as written, is sent too, for receivers written before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

SIGNATURE_HEADER = "Promos-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# The key of a whsec_ secret: 24 to 64 bytes, as the specification recommends.
MIN_KEY_BYTES, MAX_KEY_BYTES, NEW_KEY_BYTES = 24, 64, 32


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks form, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_KEY_BYTES)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a ``whsec_`` secret's decoded bytes, else its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            pass  # stored before secrets were checked (check_secret): signed as a raw secret
    return secret.encode()


def check_secret(secret: str) -> str:
    """The secret, if a ``whsec_`` one holds 24 to 64 bytes of base64; ``ValueError`` if not."""
    if not secret.startswith(SECRET_PREFIX):
        return secret
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ secret is whsec_ and standard base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"a whsec_ secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    return secret


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of a message: ``v1,<base64>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def promos_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Promos-Signature`` of a body: ``t=<timestamp>,v1=<hex>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signed_headers(secret: str, *, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of one attempt at a delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, message_id, timestamp, body),
        SIGNATURE_HEADER: promos_signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> bool:
    """Whether ``headers`` (Standard Webhooks) sign ``body`` with ``secret``, made within the
    tolerance of ``now``: what a receiver checks."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit() or abs(now - int(stamp)) > tolerance_seconds:
        return False
    expected = standard_signature(secret, message_id, int(stamp), body).encode()
    # Several signatures may be sent (space-separated), e.g. while a secret is rotated.
    offered = lowered.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, signature.encode()) for signature in offered)


def verify_promos_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """Whether a ``Promos-Signature`` header signs ``body`` with ``secret``, made within the
    tolerance of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = promos_signature(secret, timestamp, body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
