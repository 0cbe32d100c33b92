"""dnsserver: a throw-away Knot DNS authoritative server on loopback for tests.

API
    d = DnsServer(workdir=None, port=None, workers=1, start_timeout=10.0)
    d.start()              -> d; writes knot.conf into a temp dir, starts knotd as
                              the current user on 127.0.0.1:<free port> (UDP and
                              TCP), waits until it answers queries.
    d.addr                 "127.0.0.1:<port>" (the form dns_resolver_new takes)
    d.port
    d.set_zone(zone, records)
                           (re)writes the zone and waits until knot serves it.
                           records: zone-file lines relative to the zone or
                           absolute, e.g. "www 300 IN CNAME edge.hee.la.",
                           "@ A 192.0.2.10", "_x TXT \"v\"" (a TTL and class are
                           optional). An SOA (with a serial bumped on every
                           call) and an NS are added unless records hold them.
                           A new zone is added to the config and knot reloaded.
    d.remove_zone(zone)    stops serving it (queries then get REFUSED)
    d.query(name, rtype="A", tcp=False) -> (rcode, [rdata text])
                           tiny built-in client (A, AAAA, CNAME, NS, TXT, SOA
                           serial; other types as hex), for test assertions
    d.log_text()           knotd's output so far (for failure messages)
    d.stop()               knotc stop, then TERM/KILL; removes the workdir it made
    with DnsServer() as d: ...   start() and stop() around the block

Command line (for C tests, which exec it and talk over pipes):
    python3 dnsserver.py [--workers N]
    prints "READY addr=127.0.0.1:<port> port=<port> pid=<knotd pid>" on stdout
    once knot answers, then reads commands from stdin, one reply line each
    ("OK" or "ERR <message>"):
        ZONE <zone>        then record lines, then a line "END": set_zone
        DROP <zone>        remove_zone
    EOF on stdin (the parent exiting, even by crashing) or SIGTERM stops knot.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

__all__ = ["DnsServer", "free_udp_tcp_port"]

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "TXT": 16, "AAAA": 28, "CAA": 257}


def free_udp_tcp_port():
    """A port on 127.0.0.1 free for both UDP and TCP a moment ago."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def _norm_zone(zone):
    return zone.lower().rstrip(".") + "."


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _read_name(msg, off):
    """Returns (name, offset after the name in place); follows pointers."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels) + ".", (end if end is not None else off)


def _rdata_text(msg, rtype, off, rdlen):
    rd = msg[off:off + rdlen]
    if rtype == 1:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in (2, 5):
        return _read_name(msg, off)[0]
    if rtype == 16:
        parts, i = [], 0
        while i < len(rd):
            parts.append(rd[i + 1:i + 1 + rd[i]].decode("ascii", "replace"))
            i += 1 + rd[i]
        return "".join(parts)
    if rtype == 6:
        _, o = _read_name(msg, off)
        _, o = _read_name(msg, o)
        return str(struct.unpack("!I", msg[o:o + 4])[0])
    return rd.hex()


class DnsServer:
    def __init__(self, workdir=None, port=None, workers=1, start_timeout=10.0):
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="hee-knot-")
        self.port = port or free_udp_tcp_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.workers = workers
        self.start_timeout = start_timeout
        self.proc = None
        self.zones = {}  # origin -> serial
        self.conf = os.path.join(self.workdir, "knot.conf")
        self.sock = os.path.join(self.workdir, "knot.sock")
        self.zonedir = os.path.join(self.workdir, "zones")
        self.logfile = os.path.join(self.workdir, "knotd.log")

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _write_conf(self):
        w = self.workdir
        lines = [
            "server:",
            '    rundir: "%s"' % w,
            '    pidfile: "%s"' % os.path.join(w, "knot.pid"),
            "    listen: 127.0.0.1@%d" % self.port,
            "    udp-workers: %d" % self.workers,
            "    tcp-workers: %d" % self.workers,
            "    background-workers: 1",
            "control:",
            '    listen: "%s"' % self.sock,
            "database:",
            '    storage: "%s"' % os.path.join(w, "db"),
            "log:",
            "  - target: stderr",
            "    any: info",
            "template:",
            "  - id: default",
            '    storage: "%s"' % self.zonedir,
            '    file: "%s.zone"',
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: none",
            "    semantic-checks: off",
        ]
        if self.zones:
            lines.append("zone:")
            for z in sorted(self.zones):
                lines.append("  - domain: %s" % z)
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.conf)

    def start(self):
        os.makedirs(self.zonedir, exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "db"), exist_ok=True)
        self._write_conf()
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(["knotd", "-c", self.conf], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("knotd exited (%s):\n%s" % (self.proc.returncode, self.log_text()))
            try:
                self.query("ready.invalid.", "SOA", timeout=0.2)
            except OSError:
                time.sleep(0.05)
                continue
            # Answering queries is not enough: knotd opens its control
            # socket later, and set_zone needs knotc.
            if self._control_ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("knotd did not answer on %s (and %s):\n%s" % (self.addr, self.sock, self.log_text()))

    def _control_ready(self):
        r = subprocess.run(["knotc", "-c", self.conf, "-s", self.sock, "-t", "1", "status"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            subprocess.run(["knotc", "-c", self.conf, "-s", self.sock, "-t", "3", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- zones -------------------------------------------------------------
    def _knotc(self, *args):
        r = subprocess.run(["knotc", "-c", self.conf, "-s", self.sock, "-t", "10", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError("knotc %s failed: %s" % (" ".join(args), r.stdout.decode()))

    def set_zone(self, zone, records):
        origin = _norm_zone(zone)
        serial = self.zones.get(origin, 0) + 1
        has_soa = any(" SOA " in " %s " % r.upper() for r in records)
        has_ns = any(" NS " in " %s " % r.upper() for r in records)
        body = ["$ORIGIN %s" % origin, "$TTL 300"]
        if not has_soa:
            body.append("@ SOA ns.%s hostmaster.%s %d 3600 600 86400 60" % (origin, origin, serial))
        if not has_ns:
            body.append("@ NS ns.%s" % origin)
        body.extend(records)
        path = os.path.join(self.zonedir, origin + "zone")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(body) + "\n")
        os.replace(tmp, path)
        new = origin not in self.zones
        self.zones[origin] = serial
        if new:
            self._write_conf()
            self._knotc("reload")
        else:
            self._knotc("zone-reload", origin)
        if not has_soa:
            self._wait_serial(origin, serial)
        else:
            self._wait_served(origin)

    def remove_zone(self, zone):
        origin = _norm_zone(zone)
        if origin not in self.zones:
            return
        del self.zones[origin]
        self._write_conf()
        self._knotc("reload")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.query(origin, "SOA")[0] == "REFUSED":
                return
            time.sleep(0.05)
        raise RuntimeError("zone %s still served:\n%s" % (origin, self.log_text()))

    def _wait_serial(self, origin, serial):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            rcode, ans = self.query(origin, "SOA")
            if rcode == "NOERROR" and ans and int(ans[0]) == serial:
                return
            time.sleep(0.05)
        raise RuntimeError("zone %s serial %d not served:\n%s" % (origin, serial, self.log_text()))

    def _wait_served(self, origin):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.query(origin, "SOA")[0] == "NOERROR":
                return
            time.sleep(0.05)
        raise RuntimeError("zone %s not served:\n%s" % (origin, self.log_text()))

    # -- a tiny client -------------------------------------------------------
    def query(self, name, rtype="A", tcp=False, timeout=2.0):
        qtype = TYPES[rtype] if isinstance(rtype, str) else int(rtype)
        qid = int.from_bytes(os.urandom(2), "big")
        msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + _encode_name(name) + struct.pack("!HH", qtype, 1)
        if tcp:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(struct.pack("!H", len(msg)) + msg)
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("connection closed")
                    buf += chunk
                resp = buf[2:]
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.connect(("127.0.0.1", self.port))
                s.send(msg)
                while True:
                    resp = s.recv(65535)
                    if len(resp) >= 12 and struct.unpack("!H", resp[:2])[0] == qid:
                        break
        return self._parse(resp, qtype)

    @staticmethod
    def _parse(resp, qtype):
        _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", resp[:12])
        off = 12
        for _ in range(qd):
            _, off = _read_name(resp, off)
            off += 4
        out = []
        for _ in range(an):
            _, off = _read_name(resp, off)
            rtype, _, _, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
            off += 10
            if rtype == qtype or qtype == 255:
                out.append(_rdata_text(resp, rtype, off, rdlen))
            off += rdlen
        return RCODES.get(flags & 0xF, str(flags & 0xF)), out


def _cli(argv):
    workers = 1
    if "--workers" in argv:
        workers = int(argv[argv.index("--workers") + 1])
    d = DnsServer(workers=workers)

    def on_term(signum, frame):
        d.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    d.start()
    try:
        print("READY addr=%s port=%d pid=%d" % (d.addr, d.port, d.proc.pid), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "ZONE" and len(words) == 2:
                    records = []
                    for rec in sys.stdin:
                        if rec.strip() == "END":
                            break
                        records.append(rec.rstrip("\n"))
                    d.set_zone(words[1], records)
                elif words[0] == "DROP" and len(words) == 2:
                    d.remove_zone(words[1])
                else:
                    raise ValueError("unknown command %r" % line.strip())
                print("OK", flush=True)
            except Exception as e:  # reported to the C side, which decides
                print("ERR %s" % str(e).replace("\n", " ")[:500], flush=True)
    finally:
        d.stop()


if __name__ == "__main__":
    _cli(sys.argv[1:])
