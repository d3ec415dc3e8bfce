"""The URL at which a client on this machine reaches the server that ``promos serve`` starts."""

from __future__ import annotations

import ipaddress

# Listening on every address includes the loopback one, which is the one to print.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def base_url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 address in brackets, a wildcard address as loopback."""
    host = _WILDCARDS.get(host, host)
    try:
        if ipaddress.ip_address(host).version == 6:  # noqa: PLR2004 - IPv6
            host = f"[{host}]"
    except ValueError:
        pass  # a name, e.g. localhost
    return f"http://{host}:{port}"
