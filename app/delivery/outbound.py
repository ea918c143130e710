"""The outbound guard: a channel must not make Tocsin call into its own network.

Channel endpoints are user configuration (a Slack ``base_url``, a webhook URL); without a guard, anyone
allowed to create a channel could make the worker reach the cloud metadata service or an internal admin
port (SSRF). Before a send, the endpoint's host is resolved and refused when any address is loopback,
private, link-local (169.254.0.0/16 holds the metadata service), multicast, reserved or unspecified,
unless the host is listed in ``TOCSIN_OUTBOUND_ALLOW_HOSTS``. A refusal is a non-retryable failure.

This is the early, cheap refusal (a clear, final error before anything is sent); the channels' own
clients repeat the address check at connect time (``integrations.channels._net``), which is what closes
the DNS-rebinding window. Both use the same address classes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from integrations.channels._net import METADATA_HOSTS, address_refusal


def refusal(endpoint: str, allow_hosts: Collection[str]) -> str | None:
    """None when ``endpoint`` may be contacted, else why not (safe to store: no credentials in it).

    Blocking (DNS): call it from a thread in async code."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "refused: the channel endpoint is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "refused: the channel endpoint must be an http(s) URL with a host"
    if host in allow_hosts:
        return None
    if host in METADATA_HOSTS:
        return f"refused: {host} is a cloud metadata host (allow it with TOCSIN_OUTBOUND_ALLOW_HOSTS)"
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address_refusal(address) is not None:
            return (
                f"refused: {host} resolves to the non-public address {address}; list the host in "
                "TOCSIN_OUTBOUND_ALLOW_HOSTS if Tocsin should reach it"
            )
    return None


def is_resolution_failure(detail: str) -> bool:
    """A name that does not resolve now may later (retryable); a refused address will not."""
    return detail.startswith("cannot resolve")
