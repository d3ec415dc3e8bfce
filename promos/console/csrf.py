"""CSRF tokens: one per session, derived from its secret; one per sign-in form before that.

A session's token is an HMAC of the session's secret (which only the HttpOnly cookie holds),
so it is tied to that session, needs no storage, and reveals nothing of the secret. Before
sign-in there is no session: the sign-in form carries the value of a cookie of its own
(double submit), which another site can neither read nor set on our path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

FIELD = "csrf_token"  # the hidden field of every console form
HEADER = "X-CSRF-Token"  # the same token, for requests that scripts send
SIGN_IN_COOKIE = "promos_signin_csrf"
MAX_LENGTH = 128


def session_token(session_secret: str) -> str:
    """The CSRF token of the session whose cookie holds ``session_secret``."""
    mac = hmac.new(session_secret.encode(), b"promos console csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_token() -> str:
    """A random token for a sign-in form (and its cookie)."""
    return secrets.token_urlsafe(32)


def matches(expected: str | None, given: str | None) -> bool:
    """Whether ``given`` is the token ``expected``, compared in constant time."""
    if not expected or not given or len(given) > MAX_LENGTH:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
