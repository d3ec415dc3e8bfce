"""Rate limits at the HTTP edge: whose request it is, and the checks as FastAPI dependencies.

The client is ``scope["client"]``: the peer's address, or the one a trusted proxy put in
``X-Forwarded-For`` (uvicorn rewrites it for ``PROMOS_FORWARDED_ALLOW_IPS``). An IPv6 client
counts by its /64 network, which one subscriber usually holds whole.
"""

from __future__ import annotations

import ipaddress

from fastapi import Depends, Request
from starlette.types import Scope

from promos.state import AppState


def client_key(scope: Scope) -> str:
    """The client's address as a rate-limit key (its /64 network for IPv6)."""
    client = scope.get("client")
    if not client:
        return "-"  # no peer address (a Unix socket without a proxy): one shared key
    host: str = client[0]
    if ":" not in host:
        return host
    found = _ipv6_keys.get(host)
    if found is None:
        # Parsing costs microseconds: remember the answers (a bounded few).
        if len(_ipv6_keys) >= _MAX_IPV6_KEYS:
            _ipv6_keys.clear()
        found = _ipv6_keys[host] = _ipv6_key(host)
    return found


_MAX_IPV6_KEYS = 4096
_ipv6_keys: dict[str, str] = {}


def _ipv6_key(host: str) -> str:
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


async def limit_public(request: Request) -> None:
    """Count the request against the public routes' limit of its client."""
    state: AppState = request.app.state.promos
    await state.limits.check_public(client_key(request.scope))


async def limit_offers(request: Request) -> None:
    """Count the request against the Offers player routes' limit of its client."""
    state: AppState = request.app.state.promos
    await state.limits.check_offers(client_key(request.scope))


PublicLimit = Depends(limit_public)
OffersLimit = Depends(limit_offers)
