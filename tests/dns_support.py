"""A real DNS server for tests (UDP, dnslib's wire format): each test domain answers as
told — MX records, a null MX, only an A record, nothing, NXDOMAIN, SERVFAIL, or silence
(a timeout) — and every query is counted, so caching can be checked from the outside."""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dnslib import AAAA, MX, QTYPE, RCODE, RR, SOA, A, DNSRecord


@dataclass
class Zone:
    """How one domain answers. `kind`: mx | null_mx | a_only | aaaa_only | empty |
    nxdomain | servfail | silent."""

    kind: str
    ttl: int = 300


@dataclass
class DnsServer:
    address: str
    zones: dict[str, Zone]
    default: Zone | None = None  # for names not in `zones`
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def nameserver(self) -> str:
        return self.address

    @property
    def total(self) -> int:
        return sum(self.queries.values())

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        self.queries[(name, kind)] += 1
        zone = self.zones.get(name, self.default)
        reply = request.reply()
        if zone is None or zone.kind == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(_soa(name, zone.ttl if zone else 60))
            return reply
        if zone.kind == "silent":
            return None
        if zone.kind == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records = {
            ("mx", "MX"): [MX(f"mx1.{name}", 10), MX(f"mx2.{name}", 20)],
            ("null_mx", "MX"): [MX(".", 0)],
            ("a_only", "A"): [A("192.0.2.10")],
            ("aaaa_only", "AAAA"): [AAAA("2001:db8::10")],
        }.get((zone.kind, kind), [])
        for rdata in records:
            reply.add_answer(RR(name, getattr(QTYPE, kind), rdata=rdata, ttl=zone.ttl))
        if not records:
            reply.add_auth(_soa(name, zone.ttl))  # NODATA: the SOA bounds how long it is cached
        return reply


def _soa(name: str, ttl: int) -> RR:
    times = (1, 3600, 600, 86400, ttl)  # serial, refresh, retry, expire, minimum (negative TTL)
    return RR(name, QTYPE.SOA, rdata=SOA(f"ns.{name}", f"hostmaster.{name}", times), ttl=ttl)


@contextmanager
def dns_server(zones: dict[str, Zone], default: Zone | None = None) -> Iterator[DnsServer]:
    """Serve `zones` on 127.0.0.1 (a free UDP port) in a thread."""
    state: list[DnsServer] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = state[0].answer(DNSRecord.parse(data))
            if reply is not None:
                sock.sendto(reply.pack(), self.client_address)

    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state.append(DnsServer(f"{host}:{port}", zones, default))
    thread = threading.Thread(target=server.serve_forever, name="test-dns", daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
