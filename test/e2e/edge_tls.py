"""Edge TLS: decisions by SNI before any certificate is chosen (alerts for
unknown / missing / IP / oversized names, malformed and truncated hellos,
non-TLS bytes), removed and unverified domains, parked handshakes that time
out, 10,000 unknown names (bounded memory, no store lookup twice, no order),
store lookup counters, protocol versions, ALPN, session resumption across workers, key capture
for idle takeover following how connections end, per-IP limit, default certificate."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, recv_to_eof, run, test  # noqa: E402
from upstream import Upstream  # noqa: E402
from edge_common import (TestCA, client_hello, edge, hello_verdict, metric, metrics, read_response,  # noqa: E402
                         rss_kb, s_client, seed_domain, seed_project, ssl_ctx, tls_client, wait_metric)

UNRECOGNIZED, DECODE, INTERNAL = 112, 50, 80
LOOKUP_FOUND = 'hee_edge_store_lookups_total{result="found"}'
LOOKUP_NOT_FOUND = 'hee_edge_store_lookups_total{result="not_found"}'
TMP = tempfile.mkdtemp(prefix="edge-tls-")
UP = Upstream()
CA = TestCA(os.path.join(TMP, "ca"))

# A "directory" that accepts and never answers keeps any issuance pending,
# so parked handshakes must end by the edge's own bound.
BLACKHOLE = socket.socket()
BLACKHOLE.bind(("127.0.0.1", 0))
BLACKHOLE.listen(64)

# A small ASan quarantine, so RSS reflects what the daemon really holds.
ASAN = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1"}
H = Hee(env=ASAN, conf={"edge": {"handshake_wait": "1s", "negative_cache_size": "20000", "negative_ttl": "10m",
                       "max_conns_per_ip": "0", "header_timeout": "2s"},
              "acme": {"directory": "https://127.0.0.1:%d/dir" % BLACKHOLE.getsockname()[1]}})
PID = edge(H, CA, "ok.test", slug="tlsproj", upstream=UP.url)
seed_domain(H, "gone.test", PID, removed=True)
seed_domain(H, "unverified.test", PID, verified=False)
seed_domain(H, "nocert.test", PID, verified=True)


def verdict(data):
    return hello_verdict(H.tls_port, data)


@test
def reset_after_half_a_hello_frees_the_slot():
    """A client that sends part of a ClientHello and then resets: the peek
    keeps showing the old bytes and no new edge comes, so the connection
    must be dropped on the reset, not held until header_timeout (2 s)."""
    base = metric(H, "hee_connections_active")
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", H.tls_port))
        s.sendall(client_hello("ok.test")[:30])
        socks.append(s)
    expect(wait_metric(H, "hee_connections_active", lambda v: v >= base + 10, 3) >= base + 10, "ten held")
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    t0 = time.time()
    v = wait_metric(H, "hee_connections_active", lambda v: v <= base, 1.5)
    expect(v <= base, "slots freed on the reset: %s active after %.2fs (base %s)" % (v, time.time() - t0, base))


@test
def known_name_handshakes():
    s = tls_client(H, "ok.test", CA)
    expect(s.version() == "TLSv1.3", s.version())
    expect(s.selected_alpn_protocol() == "http/1.1", "ALPN http/1.1")
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 200, "request over TLS")
    s.close()


@test
def unknown_sni_alert_then_negcache():
    v = verdict(client_hello("nobody.test"))
    expect(v == ("alert", UNRECOGNIZED), "unknown name → unrecognized_name, got %r" % (v,))
    rc, out = s_client(H.tls_port, "nobody2.test")
    expect("alert" in out and ("unrecognized name" in out or "number 112" in out), out[-400:])
    hits = metric(H, 'hee_sni_total{outcome="negative_cached"}')
    v = verdict(client_hello("nobody.test"))
    expect(v == ("alert", UNRECOGNIZED), "again refused")
    expect(metric(H, 'hee_sni_total{outcome="negative_cached"}') == hits + 1, "second time from the negative cache")


@test
def missing_ip_oversized_sni():
    expect(verdict(client_hello(None)) == ("alert", UNRECOGNIZED), "no SNI → alert")
    expect(verdict(client_hello(sni_bytes=b"127.0.0.1")) == ("alert", UNRECOGNIZED), "IP SNI → alert")
    long_name = b".".join([b"a" * 60] * 5)  # 304 bytes
    v = verdict(client_hello(sni_bytes=long_name))
    expect(v[0] == "alert", "oversized SNI → alert, got %r" % (v,))
    v = verdict(client_hello(sni_bytes=b"bad_name!.test"))
    expect(v[0] == "alert", "invalid SNI → alert, got %r" % (v,))
    expect(metric(H, 'hee_sni_total{outcome="missing"}') >= 1, "missing counted")
    expect(metric(H, 'hee_sni_total{outcome="ip_literal"}') >= 1, "ip counted")


@test
def store_lookup_counters():
    """The loader counts its store lookups by result; SNI outcomes count
    handshakes, so a negative-cache hit is one and not the other."""
    found0, nf0 = metric(H, LOOKUP_FOUND), metric(H, LOOKUP_NOT_FOUND)
    unknown0 = metric(H, 'hee_sni_total{outcome="unknown"}')
    expect(verdict(client_hello("counted.test")) == ("alert", UNRECOGNIZED), "unknown refused")
    expect(verdict(client_hello("counted.test")) == ("alert", UNRECOGNIZED), "again, from the negative cache")
    expect(metric(H, LOOKUP_NOT_FOUND) == nf0 + 1, "one lookup found nothing")
    expect(metric(H, 'hee_sni_total{outcome="unknown"}') == unknown0 + 1, "one unknown handshake")
    edge(H, CA, "counted-ok.test", slug="counted", upstream=UP.url)
    tls_client(H, "counted-ok.test", CA).close()
    expect(metric(H, LOOKUP_FOUND) == found0 + 1, "a new name: one lookup found it")
    tls_client(H, "counted-ok.test", CA).close()
    expect(metric(H, LOOKUP_FOUND) == found0 + 1, "then served from the certificate cache")


@test
def malformed_truncated_and_non_tls():
    hello = client_hello("ok.test")
    bad = bytearray(hello)
    bad[9] ^= 0xFF  # legacy_version high byte / length confusion
    v = verdict(bytes(bad[:5]) + b"\x01\x00\x00\x02\xff\xff" + bytes(hello[11:40]))
    expect(v[0] in ("alert", "closed"), "malformed hello refused: %r" % (v,))
    expect(verdict(b"\x16\x03\x01\x00\x05garbage")[0] in ("alert", "closed"), "garbage record")
    # truncated: half a hello, then silence → closed by header_timeout
    t0 = time.time()
    v = verdict(hello[:len(hello) // 2])
    expect(v[0] in ("closed", "alert") and time.time() - t0 < 5, "truncated hello closed in time: %r" % (v,))
    # truncated then EOF
    s = socket.create_connection(("127.0.0.1", H.tls_port))
    s.sendall(hello[:30])
    s.close()
    v = verdict(b"GET / HTTP/1.1\r\nHost: ok.test\r\n\r\n")
    expect(v[0] == "http" and "400" in v[1], "HTTP on the TLS port → 400: %r" % (v,))
    v = verdict(os.urandom(64).replace(b"\x16", b"\x17"))
    expect(v[0] == "closed", "random bytes → closed: %r" % (v,))
    expect(H.alive(), "daemon unharmed")
    known_name_handshakes()


@test
def removed_domain_refused():
    expect(verdict(client_hello("gone.test")) == ("alert", UNRECOGNIZED), "removed domain → unrecognized_name")


@test
def unverified_parks_then_refused():
    parked = metric(H, "hee_handshakes_parked_total")
    t0 = time.time()
    v = verdict(client_hello("unverified.test"))
    dt = time.time() - t0
    expect(v == ("alert", UNRECOGNIZED), "unverified → unrecognized_name, got %r" % (v,))
    expect(dt < 3, "bounded wait (%.2fs)" % dt)
    expect(metric(H, "hee_handshakes_parked_total") >= parked + 1, "parked")
    expect(metric(H, 'hee_sni_total{outcome="unverified"}') >= 1, "unverified counted")


@test
def parked_handshake_times_out():
    t0 = time.time()
    rc, out = s_client(H.tls_port, "nocert.test")
    dt = time.time() - t0
    expect("alert" in out and ("internal error" in out or "number 80" in out), out[-400:])
    expect(0.8 <= dt < 4, "refused after handshake_wait (1s): %.2fs" % dt)
    expect("tls.cert_wanted" in H.stderr_text(), "certificate asked for")


@test
def ten_thousand_unknown_names():
    names = ["u%05d.flood.test" % i for i in range(10000)]
    lookups0 = metric(H, LOOKUP_NOT_FOUND)
    unknown0 = metric(H, 'hee_sni_total{outcome="unknown"}')
    neg0 = metric(H, 'hee_sni_total{outcome="negative_cached"}')
    rss0 = rss_kb(H.proc.pid)
    orders0 = metric(H, 'hee_issuance_total{result="started"}')
    bad = []

    def worker(part):
        for n in part:
            v = hello_verdict(H.tls_port, client_hello(n))
            if v != ("alert", UNRECOGNIZED):
                bad.append((n, v))

    for rnd in range(2):
        ts = [threading.Thread(target=worker, args=(names[i::8],)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    expect(not bad, "all refused with unrecognized_name: %r" % bad[:3])
    lookups = wait_metric(H, LOOKUP_NOT_FOUND, lambda v: v >= lookups0 + 10000) - lookups0
    unknown = metric(H, 'hee_sni_total{outcome="unknown"}') - unknown0
    neg = metric(H, 'hee_sni_total{outcome="negative_cached"}') - neg0
    expect(lookups == 10000, "one store lookup per name: %d" % lookups)
    expect(unknown == 10000, "first round refused as unknown: %d" % unknown)
    expect(neg == 10000, "second round all from the negative cache: %d" % neg)
    grow = rss_kb(H.proc.pid) - rss0
    expect(grow < 16 * 1024, "RSS grew %d KB over 20,000 handshakes" % grow)
    expect(metric(H, 'hee_issuance_total{result="started"}') == orders0, "no order started")
    expect("flood.test" not in H.stderr_text(), "no per-name log lines / orders")


@test
def versions_and_alpn():
    ctx = ssl_ctx(CA)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port)), server_hostname="ok.test")
    expect(s.version() == "TLSv1.2", "TLS 1.2 works")
    expect("GCM" in s.cipher()[0] or "CHACHA" in s.cipher()[0], "AEAD suite: %s" % s.cipher()[0])
    s.close()
    ctx = ssl_ctx(CA)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
        ctx.wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port)), server_hostname="ok.test")
        expect(False, "TLS 1.1 accepted")
    except (ssl.SSLError, OSError):
        pass
    s = tls_client(H, "ok.test", CA, alpn=("h2", "http/1.1"))
    expect(s.selected_alpn_protocol() == "http/1.1", "http/1.1 picked over h2")
    s.close()
    s = tls_client(H, "ok.test", CA, alpn=("h2",))
    expect(s.selected_alpn_protocol() is None, "no ALPN when only h2 is offered")
    s.close()
    v = verdict(client_hello("ok.test", alpn=["acme-tls/1"]))
    expect(v[0] == "alert", "acme-tls/1 without a pending challenge refused: %r" % (v,))


@test
def resumption_across_workers():
    ctx = ssl_ctx(CA)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port)), server_hostname="ok.test")
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
    read_response(s)
    sess = s.session
    s.close()
    resumed0 = metric(H, "hee_tls_resumed_total")
    n = 0
    for _ in range(12):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port)), server_hostname="ok.test",
                            session=sess)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
        read_response(s)
        n += s.session_reused
        s.close()
    expect(n == 12, "resumed %d of 12 (connections spread over 2 workers)" % n)
    expect(wait_metric(H, "hee_tls_resumed_total", lambda v: v >= resumed0 + 12) >= resumed0 + 12, "counted")


@test
def key_update_after_takeover():
    """After the first request the connection leaves OpenSSL (tlsrec); a
    client KeyUpdate asking for ours must still work both ways."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % H.tls_port, "-servername", "ok.test",
                          "-tls1_3", "-CAfile", CA.path],  # no -ign_eof: it turns off "K"
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    req = b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n"
    got = bytearray()

    def reader():
        while True:
            b = p.stdout.read1(4096)
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def output_shows(cond, what, timeout=15.0):
        # s_client acts on "K" only when it is alone in a read of stdin, so
        # each step waits for the previous one to show in its output.
        end = time.time() + timeout
        while time.time() < end and not cond(got.decode("latin-1")):
            time.sleep(0.02)
        out = got.decode("latin-1")
        expect(cond(out), "s_client: %s: %s" % (what, out[-1500:]))

    def send(data):
        p.stdin.write(data)
        p.stdin.flush()
    try:
        output_shows(lambda o: "Verify return code" in o, "handshake done")
        send(req)
        output_shows(lambda o: o.count("HTTP/1.1 200") >= 1, "first request answered")
        send(b"K\n")  # s_client: send KeyUpdate, update_requested
        output_shows(lambda o: "KEYUPDATE" in o, "sent a KeyUpdate")
        send(req)
        output_shows(lambda o: o.count("HTTP/1.1 200") >= 2, "both requests answered")
        send(b"Q\n")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        t.join(timeout=5)
    out = got.decode("latin-1")
    expect(out.count("HTTP/1.1 200") == 2, "both requests answered once: %s" % out[-1500:])


@test
def big_head_after_takeover():
    """A head within the limits (a ~36 KB one here) followed by its body
    in full 16 KB records is served on the compact record layer as on
    OpenSSL, and one over the limits gets its 431 there too."""
    pad = b"X-Pad: " + b"a" * 4000 + b"\r\n"
    for n_pad, body, want in ((7, 20000, 200), (12, 0, 431)):
        s = tls_client(H, "ok.test", CA)
        t0 = metric(H, TAKEOVERS)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
        read_response(s)
        expect(wait_metric(H, TAKEOVERS, lambda v: v >= t0 + 1) >= t0 + 1, "taken over")
        head = (b"POST /echo?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: ok.test\r\nContent-Length: %d\r\n" % body +
                pad * n_pad + b"\r\n")
        s.sendall(head + b"b" * body)
        st, hd, got, rest = read_response(s)
        s.close()
        expect(st == want, "%d-byte head after takeover: %d, want %d" % (len(head), st, want))


@test
def close_notify_answered():
    """A client that ends with close_notify gets ours back (RFC 8446 6.1),
    on OpenSSL and on the compact record layer alike; unwrap() waits for
    it and fails on a bare close."""
    for compact in (False, True):
        s = ssl_ctx(CA, strict_eof=True).wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port), timeout=10),
                                                     server_hostname="ok.test")
        t0 = metric(H, TAKEOVERS)
        if compact:
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
            read_response(s)
            expect(wait_metric(H, TAKEOVERS, lambda v: v >= t0 + 1) >= t0 + 1, "taken over")
        s.settimeout(5)
        try:
            raw = s.unwrap()
            raw.close()
        except (ssl.SSLError, OSError) as e:
            expect(False, "close_notify answered (%s): %r" % ("tlsrec" if compact else "OpenSSL", e))


@test
def garbage_after_takeover_closes():
    s = tls_client(H, "ok.test", CA)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
    read_response(s)
    time.sleep(0.1)
    sock = socket.socket(fileno=os.dup(s.fileno()))  # raw bytes under the TLS session
    sock.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))  # a record that cannot authenticate
    sock.settimeout(5)
    got = recv_to_eof(sock)
    # One protected record (alert: 2 bytes + type byte + 16-byte tag), then
    # the close: the bad_record_mac alert (unit test_edge_tlsrec decrypts it).
    expect(got[:5] == b"\x17\x03\x03\x00\x13" and len(got) == 24,
           "forged record → one encrypted alert, then close: %r" % got[:40])
    sock.close()
    s.close()
    expect(H.alive(), "daemon unharmed")
    known_name_handshakes()


@test
def bad_record_header_after_takeover_alerts():
    """A record header the compact record layer refuses (another content
    type, version or length) ends the connection with the alert RFC 8446
    calls for, protected like every alert after the handshake."""
    cases = ((b"\x16\x03\x03\x00\x28", "UNEXPECTED_MESSAGE"),  # handshake record
             (b"\x17\x03\x01\x00\x28", "DECODE_ERROR"),        # version 0x0301
             (b"\x17\x03\x03\x41\x01", "RECORD_OVERFLOW"))     # 2^14 + 257 bytes
    for hdr, reason in cases:
        t0 = metric(H, "hee_tls_record_takeovers_total")
        s = tls_client(H, "ok.test", CA)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n\r\n")
        read_response(s)
        expect(wait_metric(H, "hee_tls_record_takeovers_total", lambda v: v >= t0 + 1) >= t0 + 1,
               "the idle connection was taken over")
        sock = socket.socket(fileno=os.dup(s.fileno()))  # raw bytes under the TLS session
        sock.sendall(hdr + bytes(40))
        s.settimeout(5)
        try:
            got = "no error: %r" % s.recv(100)
        except ssl.SSLError as e:
            got = "%s %s" % (e.reason, e)
        expect(reason in got, "%r → %s alert, got %s" % (hdr, reason, got))
        sock.close()
        s.close()
    expect(H.alive(), "daemon unharmed")


TAKEOVERS = "hee_tls_record_takeovers_total"


def one_request(close):
    s = tls_client(H, "ok.test", CA)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: ok.test\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n")
    read_response(s)  # the edge flushed it: an idle connection was taken over before this returns
    s.close()


def takeovers_after(n, close=False):
    t0 = metric(H, TAKEOVERS)
    for _ in range(n):
        one_request(close)
    time.sleep(0.2)
    return metric(H, TAKEOVERS) - t0


@test
def key_capture_follows_connections():
    """Capturing secrets for the compact idle record layer costs CPU per
    handshake: once most connections close after their one request, a
    worker captures one in 16; once connections go idle again, all."""
    # Earlier tests' handshakes (alerts, truncated hellos) may have taught a
    # worker that connections close: idle traffic first teaches it back.
    takeovers_after(300)
    expect(takeovers_after(10) == 10, "idle connections taken over")
    # ~300 per worker, never idle: past the cutoff only sampled ones teach
    # the policy, so it takes a few hundred to be sure of them.
    expect(takeovers_after(600, close=True) == 0, "closed connections never idle")
    low = takeovers_after(32)
    expect(low <= 16, "after close-only traffic most idle connections are not captured (%d of 32 were)" % low)
    takeovers_after(300)  # sampled captures see connections go idle again
    expect(takeovers_after(20) == 20, "all captured again")
    known_name_handshakes()


@test
def per_ip_limit_and_default_cert():
    chain, key = CA.issue("default.invalid")
    cp, kp = os.path.join(TMP, "def.crt"), os.path.join(TMP, "def.key")
    open(cp, "w").write(chain)
    open(kp, "w").write(key)
    h2 = Hee(conf={"edge": {"max_conns_per_ip": "3", "default_cert": cp, "default_key": kp}})
    try:
        socks = [socket.create_connection(("127.0.0.1", h2.tls_port)) for _ in range(3)]
        for s in socks:  # TCP_DEFER_ACCEPT: a connection is accepted once it sends
            s.sendall(client_hello("x.test")[:20])
        # all three accepted (and counted) before the fourth arrives
        n = wait_metric(h2, "hee_connections_active", lambda v: v >= 3, timeout=15)
        expect(n >= 3, "three connections accepted: %r" % n)
        extra = socket.create_connection(("127.0.0.1", h2.tls_port))
        extra.settimeout(3)
        extra.sendall(client_hello(None))
        try:
            got = extra.recv(10)
        except ConnectionResetError:
            got = b""
        expect(got == b"", "4th connection from one IP closed: %r" % got)
        for s in socks:
            s.close()
        n = wait_metric(h2, "hee_connections_active", lambda v: v == 0, timeout=15)
        expect(n == 0, "closed connections no longer count: %r" % n)
        ctx = ssl_ctx(None)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", h2.tls_port)))
        s.sendall(b"GET / HTTP/1.1\r\nHost: whatever.test\r\n\r\n")
        st, hd, body, rest = read_response(s)
        expect(st == 421, "default certificate connection answers 421, got %d" % st)
        expect(metric(h2, "hee_connections_refused_total") >= 1, "refusal counted")
    finally:
        h2.stop()
        h2.cleanup()


@test
def worker_cap_pauses_then_sheds():
    """At max_conns_per_worker the worker stops accepting: the next client
    waits in the backlog, unanswered but not closed, and is served as soon
    as a connection closes. A pause lasts at most header_timeout; then the
    worker sheds (accepts and closes) until it is below the cap."""
    h2 = Hee(conf={"server": {"workers": "1"}, "edge": {"max_conns_per_worker": "3", "header_timeout": "3s"}})
    edge(h2, CA, "cap.test", slug="capproj", upstream=UP.url)

    def holder():  # answered once, then idle on keep-alive (idle_timeout, not header_timeout)
        s = tls_client(h2, "cap.test", CA, timeout=20)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: cap.test\r\n\r\n")
        st = read_response(s)[0]
        expect(st == 200, "holder answered: %d" % st)
        return s

    try:
        holders = [holder() for _ in range(3)]
        done = {}

        def handshake():
            try:
                done["sock"] = holder()
            except (OSError, AssertionError) as e:
                done["error"] = e

        t = threading.Thread(target=handshake)
        t.start()
        t.join(1.0)
        expect(not done, "the 4th waits while the worker is full: %r" % done)
        freed = time.monotonic()  # the pause that follows starts after this
        holders.pop().close()
        t.join(10)
        expect("sock" in done, "served once a slot freed: %r" % done)
        holders.append(done["sock"])
        expect(metric(h2, "hee_connections_refused_total") == 0, "nothing closed at accept while paused")

        late = socket.create_connection(("127.0.0.1", h2.tls_port))
        late.sendall(client_hello(None))
        late.settimeout(15)
        try:
            got = late.recv(5)
        except ConnectionResetError:
            got = b""
        paused = time.monotonic() - freed
        expect(got == b"" and 2.8 <= paused <= 12, "shed after a 3 s pause: %r, %.2f s" % (got, paused))
        expect(metric(h2, "hee_connections_refused_total") >= 1, "the shed connection counted")
        expect(metric(h2, "hee_edge_accept_paused_total") >= 2, "pauses counted")
        late.close()
        for s in holders:
            s.close()
    finally:
        h2.stop()
        h2.cleanup()


def teardown():
    H.stop()
    UP.stop()
    BLACKHOLE.close()


if __name__ == "__main__":
    run(teardown=teardown)
