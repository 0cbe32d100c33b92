"""verify_dns: DNS set-up shared by the verification end-to-end tests.

    with VerifyDns() as dns:      knot (test/lib/dnsserver.py) plus a proxy in front
        dns.addr                  "127.0.0.1:<port>" of the proxy: hee's [verify] resolvers
        dns.knot                  the DnsServer (set_zone / remove_zone / query)
        dns.rule(suffix, what)    names at or under suffix get: "drop" (never answered:
                                  timeouts), "servfail", or "bogus" (SERVFAIL unless the
                                  query sets CD, as a validating resolver answers a zone
                                  whose signatures fail); what=None removes the rule
        dns.stats                 {"udp": n, "tcp": n, "dropped": n, ...}

The proxy forwards everything else to knot unchanged, over the transport it
came in on, so knot's own truncation (answers over 512 bytes without EDNS)
reaches hee and sends it to TCP. One thread per UDP datagram and per TCP
connection: fine for tests, not for benchmarks.
"""

import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dnsserver import DnsServer, free_udp_tcp_port  # noqa: E402

__all__ = ["VerifyDns", "EDGE_TARGET", "EDGE_ADDRS", "hee_verify_conf"]

EDGE_TARGET = "edge.hee.la"
EDGE_ADDRS = "192.0.2.10 2001:db8::10"


def hee_verify_conf(dns_addr, **verify):
    """A heetest conf dict: resolvers, short intervals, the edge's names."""
    v = {"resolvers": dns_addr, "dns_timeout": "300ms", "dns_attempts": "2",
         "pending_interval": "1s", "pending_window": "1h", "stalled_interval": "2s",
         "verified_interval": "2s", "first_request_probe": "1s"}
    v.update({k: str(x) for k, x in verify.items()})
    return {"verify": v,
            "edge": {"target": EDGE_TARGET, "addresses": EDGE_ADDRS},
            "acme": {"caa_identity": "letsencrypt.org"}}


def _qname(msg):
    labels, off = [], 12
    while off < len(msg):
        n = msg[off]
        if n == 0 or n & 0xC0:
            break
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace").lower())
        off += 1 + n
    return ".".join(labels)


def _servfail(query):
    qid, flags = struct.unpack("!HH", query[:4])
    flags = 0x8000 | (flags & 0x7910) | 0x0080 | 2  # QR, keep opcode/RD/CD, RA, SERVFAIL
    # header + the question section as asked
    end = 12
    while end < len(query) and query[end] != 0:
        end += 1 + query[end]
    end += 5
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + query[12:end]


class VerifyDns:
    def __init__(self):
        self.knot = DnsServer()
        self.port = free_udp_tcp_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.rules = {}
        self.stats = {"udp": 0, "tcp": 0, "dropped": 0, "servfail": 0, "bogus": 0}
        self._lock = threading.Lock()
        self._stop = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.knot.start()
        try:
            self.knot.set_zone("hee.la", ["edge A 192.0.2.10", "edge AAAA 2001:db8::10"])
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", self.port))
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("127.0.0.1", self.port))
            self.tcp.listen(64)
            self.udp.settimeout(0.2)
            self.tcp.settimeout(0.2)
            self._threads = [threading.Thread(target=self._udp_loop, daemon=True),
                             threading.Thread(target=self._tcp_loop, daemon=True)]
            for t in self._threads:
                t.start()
        except BaseException:
            self.stop()  # a failed start must not leave knotd running
            raise
        return self

    def stop(self):
        self._stop = True
        for t in getattr(self, "_threads", []):
            t.join(2)
        for s in (getattr(self, "udp", None), getattr(self, "tcp", None)):
            if s:
                s.close()
        self.knot.stop()

    def rule(self, suffix, what):
        with self._lock:
            if what is None:
                self.rules.pop(suffix.lower().rstrip("."), None)
            else:
                assert what in ("drop", "servfail", "bogus"), what
                self.rules[suffix.lower().rstrip(".")] = what

    def _decide(self, query):
        name = _qname(query)
        cd = len(query) > 3 and query[3] & 0x10
        with self._lock:
            for suffix, what in self.rules.items():
                if name == suffix or name.endswith("." + suffix):
                    if what == "bogus" and cd:
                        return None
                    self.stats["dropped" if what == "drop" else what] += 1
                    return what
        return None

    def _answer(self, query, tcp):
        what = self._decide(query)
        if what == "drop":
            return None
        if what in ("servfail", "bogus"):
            return _servfail(query)
        try:
            if tcp:
                with socket.create_connection(("127.0.0.1", self.knot.port), timeout=2) as s:
                    s.sendall(struct.pack("!H", len(query)) + query)
                    buf = b""
                    while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                        chunk = s.recv(65536)
                        if not chunk:
                            return None
                        buf += chunk
                    return buf[2:2 + struct.unpack("!H", buf[:2])[0]]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.sendto(query, ("127.0.0.1", self.knot.port))
                return s.recv(65535)
        except OSError:
            return None

    def _udp_loop(self):
        while not self._stop:
            try:
                query, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.stats["udp"] += 1
            threading.Thread(target=self._udp_one, args=(query, peer), daemon=True).start()

    def _udp_one(self, query, peer):
        resp = self._answer(query, False)
        if resp is not None:
            try:
                self.udp.sendto(resp, peer)
            except OSError:
                pass

    def _tcp_loop(self):
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.stats["tcp"] += 1
            threading.Thread(target=self._tcp_one, args=(conn,), daemon=True).start()

    def _tcp_one(self, conn):
        conn.settimeout(3)
        try:
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            query = buf[2:2 + struct.unpack("!H", buf[:2])[0]]
            resp = self._answer(query, True)
            if resp is not None:
                conn.sendall(struct.pack("!H", len(resp)) + resp)
        except OSError:
            pass
        finally:
            conn.close()
