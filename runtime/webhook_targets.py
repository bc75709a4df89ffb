"""Which URLs an endpoint may have (DESIGN W3): http(s) to a public address.

A webhook URL is chosen by whoever holds an API key, and the worker that posts to it sits
inside the deployment's network: a URL naming a loopback, private, link-local or other
non-public address would let that person reach internal services (SSRF). The address is
checked when the endpoint is added and again before each delivery, since a name can be
pointed elsewhere later; and the connection itself is made only to an address checked at
that moment (`public_only_client`), so a name re-pointed between the check and the
connection (DNS rebinding) cannot slip through. `OUTBOUND_WEBHOOKS__ALLOW_PRIVATE=true`
allows them, for local receivers and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def check_target(url: str, *, allow_private: bool) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise TargetRefused(f"not a URL: {url!r} ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TargetRefused(f"a webhook URL is http:// or https:// with a host, got {url!r}")
    if allow_private:
        return
    _public_addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))


def public_only_client(limits: httpx.Limits) -> httpx.Client:
    """An HTTP client that connects to public addresses only, whatever a name resolves to
    by the time the connection is made. TLS still names the host (SNI, certificate check)."""
    transport = httpx.HTTPTransport(limits=limits)
    # httpx takes no network backend of its own; its connection pool does.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_PublicOnlyBackend(),
    )
    return httpx.Client(transport=transport)


class _PublicOnlyBackend(httpcore.SyncBackend):
    """Resolves the name itself and connects to the first of its addresses, once every one
    has been found public: the check and the connection see the same answer."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            address = _public_addresses(host, port)[0]
        except TargetRefused as refused:
            raise httpcore.ConnectError(str(refused)) from None
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def _public_addresses(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetRefused(f"{host} does not resolve: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        if not _public(address):
            raise TargetRefused(
                f"{host} resolves to {address}, a loopback, private or reserved address; webhooks go to"
                " public addresses only (OUTBOUND_WEBHOOKS__ALLOW_PRIVATE=true allows it, for local receivers)"
            )
    return addresses


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
