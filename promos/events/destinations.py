"""Where webhooks may be sent: public addresses, and what PROMOS_WEBHOOK_ALLOWED_HOSTS lists.

A webhook URL is chosen by whoever holds an admin credential; unchecked, it would let them
make Promos call what only Promos can reach (its loopback, the cloud's metadata service at
169.254.169.254, the private network): server-side request forgery. So a subscription's
host must resolve to public addresses only, unless the operator allowed it, and that is
checked twice: when the subscription is made (to say so at once), and when each delivery
connects, on the very addresses it connects to (a name may resolve elsewhere by then: DNS
rebinding). The billing callback's URL is the operator's own setting and is not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

from promos.events.errors import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses the name resolves to (tests plug in their own resolver)
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

SETTING = "PROMOS_WEBHOOK_ALLOWED_HOSTS"
# A subscription is checked when it is made, but not held up long by a slow resolver.
CREATE_LOOKUP_SECONDS = 2.0
_HOST_NAME = re.compile(
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses the system's resolver gives for a TCP connection to ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address, and the IPv4 addresses an IPv6 one carries (mapped, 6to4, NAT64, Teredo)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def kind_of(address: IPAddress) -> str | None:
    """What keeps an address from being a public destination, or None if it is one."""
    for candidate in _embedded(address):
        for kind, test in (
            ("a loopback", candidate.is_loopback),
            ("an unspecified", candidate.is_unspecified),
            ("a link-local", candidate.is_link_local),
            ("a multicast", candidate.is_multicast),
            ("a private", candidate.is_private),
            ("a non-public", not candidate.is_global),
        ):
            if test:
                return kind
    return None


def parse_allowed(entries: str) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Host names and networks from a comma-separated list; ``ValueError`` names a bad one."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in re.split(r"[,\s]+", entries.strip()):
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.fullmatch(entry):
            raise ValueError(f"{raw!r} is neither a host name, an IP address nor a network (CIDR)")
        names.add(entry)
    return frozenset(names), tuple(networks)


@dataclass(frozen=True, slots=True)
class Destinations:
    """Which hosts and addresses webhooks may go to."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    resolve: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def allowing(cls, entries: str, *, resolve: Resolver = system_resolver) -> Destinations:
        """Public addresses, and the names and networks ``entries`` lists (the setting)."""
        names, networks = parse_allowed(entries)
        return cls(names, networks, resolve)

    def _name_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def _check(self, host: str, address: IPAddress) -> None:
        kind = kind_of(address)
        if kind is None or any(address in network for network in self.networks):
            return
        shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
        raise DestinationRefused(
            f"{shown} is {kind} address: webhooks go to public addresses only, unless "
            f"{SETTING} lists the host or its network"
        )

    async def check_url(self, url: str) -> None:
        """Refuse a subscription's URL whose host is, or now resolves to, an address that is
        not allowed (``DestinationRefused``). A name that does not resolve now is let be:
        every delivery checks again."""
        parts = urlsplit(url)
        host = parts.hostname
        if host is None:
            raise DestinationRefused("the URL names no host")
        if self._name_allowed(host):
            return
        literal = _literal(host)
        if literal is not None:
            self._check(host, literal)
            return
        try:
            async with asyncio.timeout(CREATE_LOOKUP_SECONDS):
                addresses = await self.resolve(host, parts.port or _default_port(parts.scheme))
        except (OSError, TimeoutError):
            return
        for address in addresses:
            self._check(host, ipaddress.ip_address(address))

    async def addresses(self, host: str, port: int, *, within: float | None) -> Sequence[str]:
        """The addresses a delivery to ``host`` may connect to; ``DestinationRefused`` if the
        host is, or resolves to, any other (a name that mixes both is refused whole)."""
        literal = _literal(host)
        if literal is not None:
            if not self._name_allowed(host):
                self._check(host, literal)
            return [str(literal)]
        try:
            async with asyncio.timeout(within):
                found = await self.resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved: {exc}") from exc
        if not self._name_allowed(host):
            for address in found:
                self._check(host, ipaddress.ip_address(address))
        return found

    def client(self, *, timeout: float) -> httpx.AsyncClient:
        """An HTTP client that connects only where these destinations allow."""
        return httpx.AsyncClient(
            transport=_CheckedTransport(self),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting to the addresses ``Destinations`` allows: the
    check and the connection use the same resolution."""

    def __init__(self, destinations: Destinations) -> None:
        self._destinations = destinations
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._destinations.addresses(host, port, within=timeout)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that connects through ``_CheckedBackend``."""

    def __init__(self, destinations: Destinations) -> None:
        super().__init__(trust_env=False)
        # httpx does not let its pool's network backend be chosen: its pool is replaced by
        # the same pool (HTTP/1.1, TLS verified against the host name) with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_CheckedBackend(destinations),
        )
