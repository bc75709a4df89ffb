"""Where a domain's mail goes, from DNS (dnspython), each answer kept for its TTL.

MX first; a single `MX 0 .` is RFC 7505's null MX (the domain takes no mail); without MX
records, mail goes to the domain's A or AAAA (RFC 5321's implicit MX). Answers, empty
answers and NXDOMAIN are cached by dnspython's own cache for as long as the zone says
(NXDOMAIN: the SOA's minimum), so a batch of addresses at one domain costs one query.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from domain.email_verdict import MailRoute
from runtime.settings import VerificationSettings

_UNANSWERED = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.YXDOMAIN)


def nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    """`10.0.0.2`, `10.0.0.2:5353`, `::1` or `[::1]:5353`."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = int(rest.removeprefix(":") or 53)
    elif host.count(":") == 1:
        host, _, given = host.partition(":")
        port = int(given)
    ipaddress.ip_address(host)  # a resolver is named by its address: raises ValueError otherwise
    return dns.nameserver.Do53Nameserver(host, port)


class MailRoutes:
    def __init__(self, settings: VerificationSettings) -> None:
        resolver = dns.resolver.Resolver(configure=not settings.nameservers)
        if settings.nameservers:
            resolver.nameservers = [nameserver(each) for each in settings.nameservers]
        resolver.lifetime = settings.timeout
        resolver.timeout = min(settings.timeout, 2.0)
        if settings.cache_size:
            resolver.cache = dns.resolver.LRUCache(settings.cache_size)
        self.resolver = resolver

    def route(self, domain: str) -> MailRoute:
        """How `domain` (IDNA, ASCII) receives mail."""
        try:
            exchangers = self.resolver.resolve(domain, "MX", search=False)
        except dns.resolver.NXDOMAIN:
            return MailRoute.NO_DOMAIN
        except dns.resolver.NoAnswer:
            return self._implicit(domain)
        except _UNANSWERED:
            return MailRoute.UNANSWERED
        records = list(exchangers)
        if len(records) == 1 and records[0].exchange == dns.name.root:
            return MailRoute.NULL_MX
        return MailRoute.MX

    def _implicit(self, domain: str) -> MailRoute:
        for kind in ("A", "AAAA"):
            try:
                self.resolver.resolve(domain, kind, search=False)
                return MailRoute.IMPLICIT
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NXDOMAIN:
                return MailRoute.NO_DOMAIN
            except _UNANSWERED:
                return MailRoute.UNANSWERED
        return MailRoute.NO_MAIL
