"""The headers of every console answer: what the browser may load, frame, refer and keep."""

from __future__ import annotations

from starlette.responses import Response

# Scripts and styles from /admin/static only: no inline script, no inline style attribute,
# nothing from another origin. Forms post to the console itself; no page may frame it.
_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
)
CONTENT_SECURITY_POLICY = "; ".join(_DIRECTIVES)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # Links to other sites do not learn which console page (a batch id, a filter) they came from.
    "Referrer-Policy": "same-origin",
    # Pages hold secrets (a new API key) and personal data: no cache, shared or private, keeps one.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

# Static files: cached (their URLs change with their contents), never sniffed.
STATIC_HEADERS = {
    "Cache-Control": "public, max-age=86400",
    "X-Content-Type-Options": "nosniff",
}


def secure_page(response: Response) -> Response:
    """``response`` with the console's page headers (those it set itself stay)."""
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
