"""Outbound connections for channels, guarded at connect time.

Channel URLs are user configuration (a webhook, a Jira or GitHub Enterprise base URL, an SMTP host), so a
channel could aim Tocsin at its own network (SSRF: the cloud metadata service, an internal admin port).
Every connection a channel opens resolves the host itself, refuses the connection when any address is
loopback, private, link-local (169.254.169.254 included), multicast, reserved or unspecified, and then
connects to the address it checked — so a DNS answer that changes between a check and the connection
(rebinding) cannot switch the target. Redirects are never followed; ``https`` is required unless the
channel is explicitly marked insecure. Hosts in ``OutboundPolicy.allow_hosts`` (``TOCSIN_OUTBOUND_ALLOW_HOSTS``)
skip the address check: that is configuration, not a code path that turns the guard off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from app.contracts import OutboundPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class OutboundRefused(httpx.ConnectError):
    """The guard refused a destination. Not retryable: the address will not become public by waiting."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be contacted, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
    ):
        if flag:
            return label
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


async def resolve_allowed(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """The addresses to connect to for ``host``; raises ``OutboundRefused`` naming the host, the address
    and its class when any address is not public (one bad answer is enough: a resolver may rotate)."""
    name = host.lower().rstrip(".")
    if name in policy.allow_hosts:
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
        return _unique(str(info[4][0]) for info in infos)
    if name in METADATA_HOSTS:
        raise OutboundRefused(f"refused: {name} is a cloud metadata host")
    literal = _literal(name)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpx.ConnectError(f"cannot resolve {name}: {exc}") from None
        addresses = _unique(str(info[4][0]) for info in infos)
    for text in addresses:
        reason = address_refusal(ipaddress.ip_address(text.split("%")[0]))
        if reason is not None:
            raise OutboundRefused(
                f"refused: {name} resolves to the {reason} address {text}; list the host in "
                "TOCSIN_OUTBOUND_ALLOW_HOSTS if Tocsin should reach it"
            )
    return addresses


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check between resolution and connection. TLS still
    verifies the certificate against the host name (httpcore passes it to ``start_tls`` separately)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_allowed(host, port, self._policy)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {last}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("refused: unix sockets are not a channel destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(retries=0)
        # httpx builds its pool without a way to pass a network backend: replace it with one that has ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend(policy)
        )


def check_url(url: str, *, allow_http: bool = False) -> httpx.URL:
    """Parse a channel URL; ``https`` only unless the channel is marked insecure (local testing)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ValueError("must be an http(s) URL with a host")
    if parsed.scheme == "http" and not allow_http:
        raise ValueError("must use https (set the channel option insecure: true only for local testing)")
    if parsed.userinfo:
        raise ValueError("must not carry credentials in the URL: use the channel's secret_ref")
    return parsed


def guarded_client(
    policy: OutboundPolicy,
    *,
    base_url: str = "",
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An httpx client whose every connection passes the address check, never following redirects."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        headers=dict(headers or {}),
        follow_redirects=False,
        transport=_GuardedTransport(policy),
        trust_env=False,  # no proxy from the environment: the guard must see the real destination
    )


class _GuardedAiohttpResolver(AbstractResolver):
    """The same connect-time check for aiohttp (slack-sdk's client): aiohttp connects to exactly the
    addresses this resolver returns, so only checked addresses are ever dialled."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve_allowed(host, port, self._policy)
        except httpx.ConnectError as exc:
            raise OSError(str(exc)) from None
        results: list[ResolveResult] = []
        for address in addresses:
            is_v6 = ":" in address
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": socket.AF_INET6 if is_v6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def guarded_aiohttp_session(policy: OutboundPolicy, timeout: float) -> aiohttp.ClientSession:
    """An aiohttp session whose connections pass the address check (no proxy from the environment)."""
    connector = aiohttp.TCPConnector(resolver=_GuardedAiohttpResolver(policy))
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False
    )
