"""Which URLs an endpoint may have (DESIGN W3): http(s) to a public address.

A webhook URL is chosen by whoever holds an API key, and the worker that posts to it sits
inside the deployment's network: a URL naming a loopback, private, link-local or other
non-public address would let that person reach internal services (SSRF). The address is
checked when the endpoint is added and again before each delivery, since a name can be
pointed elsewhere later. `OUTBOUND_WEBHOOKS__ALLOW_PRIVATE=true` allows them, for local
receivers and tests.
"""

from __future__ import annotations

import ipaddress
import socket

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
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)}
    except socket.gaierror as error:
        raise TargetRefused(f"{parsed.host} does not resolve: {error.strerror}") from None
    for address in sorted(addresses):
        if not _public(address):
            raise TargetRefused(
                f"{parsed.host} resolves to {address}, a loopback, private or reserved address; webhooks go to"
                " public addresses only (OUTBOUND_WEBHOOKS__ALLOW_PRIVATE=true allows it, for local receivers)"
            )


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
