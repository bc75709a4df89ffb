"""A small DNS server for trying email verification offline (the jobs demo uses it): each
domain answers as told — MX records, a null MX (RFC 7505), only an A record — and any
other name is NXDOMAIN. Built on dnspython's wire format, UDP on 127.0.0.1.

    with LocalDns({"acme.example": "mx", "nomail.example": "null_mx"}) as dns:
        ...  # OUTBOUND_VERIFICATION__NAMESERVERS='["%s"]' % dns.address
"""

from __future__ import annotations

import socketserver

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from examples.served_in_a_thread import ServedInAThread

TTL = 300


class LocalDns(ServedInAThread):
    _thread_name = "local-dns"

    def __init__(self, zones: dict[str, str]) -> None:
        self.zones = {name.lower(): kind for name, kind in zones.items()}
        self.queries = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(outer.answer(dns.message.from_wire(data)).to_wire(), self.client_address)

        self._server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        self.queries += 1
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        kind = self.zones.get(name)
        records = {
            ("mx", dns.rdatatype.MX): f"10 mx1.{name}.",
            ("null_mx", dns.rdatatype.MX): "0 .",
            ("a_only", dns.rdatatype.A): "192.0.2.10",
        }
        if kind is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (record := records.get((kind, question.rdtype))) is not None:
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", question.rdtype, record))
            return response
        soa = f"ns.{name}. hostmaster.{name}. 1 3600 600 86400 {TTL}"  # bounds how long "nothing" is cached
        response.authority.append(dns.rrset.from_text(question.name, TTL, "IN", "SOA", soa))
        return response
