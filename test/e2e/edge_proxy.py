"""Edge proxy end to end: framing both ways, streaming, keep-alive on both
sides, pipelining, HEAD/1xx/204/304, 100-continue, WebSocket, forwarding and
tenant headers (signature checked), 421, fallback, 502/504, access log."""

import hashlib
import hmac
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, recv_to_eof, run, test  # noqa: E402
from upstream import Upstream, pattern  # noqa: E402
from edge_common import (TestCA, curl_reused, curl_verbose, edge, fetch, metric, read_response,  # noqa: E402
                         seed_domain, seed_cert, seed_project, sni_conn, tls_client, wait_metric)

TMP = tempfile.mkdtemp(prefix="edge-proxy-")
UP = Upstream()
UP2 = Upstream()
CA = TestCA(os.path.join(TMP, "ca"))
UPS = Upstream(tls=CA.files("localhost", ip="127.0.0.1"))          # https origin, verifiable
UPS_BAD = Upstream(tls=CA.files("wrong.name.test"))                  # https origin, wrong name
ACCESS = os.path.join(TMP, "access.log")


def _hosts_namespace():
    """A wrapper that runs hee in a private mount namespace whose /etc/hosts
    is this one plus stock Debian 12's "::1 localhost" line and
    twoaddr.test and slowfirst.test → ::1, 127.0.0.1; None when
    unshare -m cannot be used here (the name cases are then skipped)."""
    hosts = os.path.join(TMP, "hosts")
    try:
        with open("/etc/hosts") as f:
            base = f.read()
    except FileNotFoundError:  # nothing to bind-mount over: the check below skips
        base = ""
    with open(hosts, "w") as f:
        f.write(base.rstrip("\n") + "\n::1 localhost ip6-localhost ip6-loopback\n::1 twoaddr.test\n"
                "127.0.0.1 twoaddr.test\n::1 slowfirst.test\n127.0.0.1 slowfirst.test\n")
    ns = "unshare -m" if os.geteuid() == 0 else "unshare -rm"
    inner = 'mount --bind "$0" /etc/hosts && exec "$@"'
    try:
        out = subprocess.run(ns.split() + ["sh", "-c", inner, hosts, "getent", "ahosts", "twoaddr.test"],
                             capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    if not out or out[0] != "::1" or "127.0.0.1" not in out:
        print("SKIP upstream name with an unreachable first address: %s cannot bind-mount /etc/hosts" % ns)
        return None
    wrapper = os.path.join(TMP, "hee-in-ns")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s sh -c '%s' %s %s \"$@\"\n" % (ns, inner, hosts, os.environ["HEE_BIN"]))
    os.chmod(wrapper, 0o755)
    return wrapper


HEE_IN_NS = _hosts_namespace()
KEY = b"s3cret-project-key-0123456789abc"
# upstream_ca_bundle: https origins must be signed by the test CA.
H = Hee(conf={"edge": {"handshake_wait": "3s", "upstream_timeout": "1500ms", "upstream_ca_bundle": CA.path,
                       "upstream_connect_timeout": "700ms", "upstream_fail_timeout": "3s",
                       "trusted_proxies": "10.9.0.0/16"},
              "log": {"access_log": ACCESS}}, bin=HEE_IN_NS)
META = '{"workspaceId":"ws_abc123","plan":"pro"}'
P_MAIN = edge(H, CA, "app.test", slug="acme", upstream=UP.url, hmac_key=KEY, metadata=META,
              settings='{"forwardMetadata": true}')
for n in ("two.test", "other.test"):
    seed_domain(H, n, P_MAIN, metadata=META)
    seed_cert(H, n, *CA.issue(n))
edge(H, CA, "nometa.test", slug="plain-proj", upstream=UP.url, hmac_key=KEY)
edge(H, CA, "fallback.test", slug="fb", upstream="http://127.0.0.1:1", fallback=UP2.url)
edge(H, CA, "down.test", slug="down", upstream="http://127.0.0.1:1")
edge(H, CA, "small.test", slug="small", upstream=UP.url, settings='{"maxBodyBytes": 1000}')
edge(H, CA, "tlsup.test", slug="tlsup", upstream="https://localhost:%d" % UPS.port)
edge(H, CA, "tlsip.test", slug="tlsip", upstream=UPS.url)
edge(H, CA, "tlsbad.test", slug="tlsbad", upstream="https://127.0.0.1:%d" % UPS_BAD.port)
edge(H, CA, "twoaddr.test", slug="twoaddr", upstream="http://twoaddr.test:%d" % UP.port)
edge(H, CA, "slowfirst.test", slug="slowfirst", upstream="http://slowfirst.test:%d" % UP.port)


def blackhole(family=socket.AF_INET, addr="127.0.0.1", port=0):
    """A listener whose accept queue is full, so the kernel drops SYNs and
    a connect to it hangs. Returns (port, close)."""
    ls = socket.socket(family)
    ls.bind((addr, port))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket(family)
        f.setblocking(False)
        try:
            f.connect((addr, port))
        except BlockingIOError:
            pass
        fillers.append(f)

    def close():
        for f in fillers:
            f.close()
        ls.close()
    return port, close


def conn(host="app.test"):
    return tls_client(H, host, CA)


def req(sock, data, head_only=False):
    sock.sendall(data)
    st, hd, body, rest = read_response(sock, head_only)
    expect(rest == b"", "unexpected bytes after the response: %r" % rest[:100])
    return st, hd, body


def echo(body):
    return json.loads(body)


def hdr(rec, name):
    return Upstream.header(rec, name)


@test
def get_and_forwarding_headers():
    st, hd, body = fetch(H, "app.test", "GET", "/echo/a?q=secret", ca=CA,
                         headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6",
                                  "X-Hee-Project": "evil", "X-Hee-Tenant-Signature": "t=1,v1=00",
                                  "X-Hee-Metadata": "e30", "X-Request-Id": "client-rid-1",
                                  # '_' spellings, which CGI-style upstreams read as the same names
                                  "X_Forwarded_For": "6.6.6.6", "X-Forwarded_Host": "evil.example",
                                  "X_Hee_Project": "evil", "X-Hee_Tenant_Signature": "t=1,v1=00",
                                  "X_Request_Id": "zz", "X_Other": "kept"})
    expect(st == 200, "status %d" % st)
    r = echo(body)
    expect(r["target"] == "/echo/a?q=secret", r["target"])
    expect(hdr(r, "host") == "app.test", "host %r" % hdr(r, "host"))
    expect(hdr(r, "x-forwarded-for") == "127.0.0.1", "xff %r" % hdr(r, "x-forwarded-for"))
    expect(hdr(r, "x-forwarded-proto") == "https", "xfp")
    expect(hdr(r, "x-forwarded-host") == "app.test", "xfh")
    expect(hdr(r, "forwarded") == "for=127.0.0.1;host=app.test;proto=https", hdr(r, "forwarded"))
    expect(hdr(r, "x-request-id") == "client-rid-1", "client request id kept")
    expect(hdr(r, "x-hee-project") == "acme", "tenant %r" % hdr(r, "x-hee-project"))
    names = [k.lower().replace("_", "-") for k, _ in r["headers"]]
    for n in ("x-hee-project", "x-hee-tenant-signature", "x-hee-metadata", "forwarded", "x-forwarded-for",
              "x-forwarded-host", "x-request-id"):
        expect(names.count(n) == 1, "%s appears %d times (any spelling)" % (n, names.count(n)))
    expect(hdr(r, "x_other") == "kept", "other '_' names pass")
    meta = hdr(r, "x-hee-metadata")
    expect(base64.urlsafe_b64decode(meta + "=" * (-len(meta) % 4)).decode() == META, "metadata %r" % meta)
    sig = hdr(r, "x-hee-tenant-signature")
    t = sig.split(",")[0][2:]
    want = hmac.new(KEY, ("%s.app.test.acme.%s" % (t, meta)).encode(), hashlib.sha256).hexdigest()
    expect(sig == "t=%s,v1=%s" % (t, want), "signature %r, want v1=%s" % (sig, want))
    expect(abs(int(t) - time.time()) < 5, "timestamp")


@test
def trusted_proxy_headers_kept():
    h2 = Hee(conf={"edge": {"trusted_proxies": "10.0.0.0/8, 127.0.0.0/8"}})
    try:
        edge(h2, CA, "t.test", slug="trusty", upstream=UP.url)
        st, hd, body = fetch(h2, "t.test", "GET", "/echo", ca=CA,
                             headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "http",
                                      "Forwarded": "for=203.0.113.7", "X-Hee-Project": "evil"})
        r = echo(body)
        expect(hdr(r, "x-forwarded-for") == "203.0.113.7, 127.0.0.1", hdr(r, "x-forwarded-for"))
        expect(hdr(r, "x-forwarded-proto") == "http", "a trusted proxy's proto is kept")
        expect(hdr(r, "forwarded") == "for=203.0.113.7, for=127.0.0.1;host=t.test;proto=https", hdr(r, "forwarded"))
        expect(hdr(r, "x-hee-project") == "trusty", "tenant header never taken from the client")
        # Every line a trusted proxy sent is kept, in order: five lines, the
        # last being the proxy's own, cannot be cut to four by the client.
        s = tls_client(h2, "t.test", CA)
        st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: t.test\r\n" +
                           b"X-Forwarded-For: 6.6.6.6\r\n" * 4 + b"X-Forwarded-For: 203.0.113.9\r\n" +
                           b"Forwarded: for=6.6.6.6\r\n" * 4 + b"Forwarded: for=203.0.113.9\r\n"
                           b"X-Forwarded-For:\r\n\r\n")
        s.close()
        r = echo(body)
        expect(hdr(r, "x-forwarded-for") == "6.6.6.6, " * 4 + "203.0.113.9, 127.0.0.1", hdr(r, "x-forwarded-for"))
        expect(hdr(r, "forwarded") == "for=6.6.6.6, " * 4 + "for=203.0.113.9, for=127.0.0.1;host=t.test;proto=https",
               hdr(r, "forwarded"))
    finally:
        h2.stop()
        h2.cleanup()


@test
def no_metadata_unless_asked():
    st, hd, body = fetch(H, "nometa.test", "GET", "/echo", ca=CA)
    r = echo(body)
    expect(hdr(r, "x-hee-metadata") is None, "metadata forwarded without forwardMetadata")
    sig = hdr(r, "x-hee-tenant-signature")
    t = sig.split(",")[0][2:]
    want = hmac.new(KEY, ("%s.nometa.test.plain-proj." % t).encode(), hashlib.sha256).hexdigest()
    expect(sig.endswith(want), "signature over an empty metadata field")
    rid = hdr(r, "x-request-id")
    expect(rid and len(rid) == 32, "generated request id %r" % rid)


@test
def post_content_length_and_chunked_both_ways():
    s = conn()
    data = os.urandom(70000)
    st, hd, body = req(s, b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    r = echo(body)
    expect(st == 200 and r["body_len"] == len(data), "CL body")
    expect(r["body_sha256"] == hashlib.sha256(data).hexdigest(), "CL body hash")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 5000]), data[i:i + 5000]) for i in range(0, len(data), 5000))
    st, hd, body = req(s, b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + chunks + b"0\r\nX-Trailer: 1\r\n\r\n")
    r = echo(body)
    expect(r["body_len"] == len(data) and r["body_sha256"] == hashlib.sha256(data).hexdigest(), "chunked body")
    expect(hdr(r, "transfer-encoding") == "chunked", "chunked forwarded as chunked")
    st, hd, body = req(s, b"GET /stream?n=300000&chunked=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(hd.get("transfer-encoding") == "chunked" and body == pattern(300000), "chunked response")
    st, hd, body = req(s, b"GET /stream?n=300000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(hd.get("content-length") == "300000" and body == pattern(300000), "CL response")
    st, hd, body = req(s, b"GET /trailers HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(body == b"hello", "trailers response")
    s.close()


@test
def chunked_request_reframed_trailers_dropped():
    """A chunked request body reaches the origin in Hee's own framing:
    minimal sizes, no extensions, no trailer section (an origin that reads
    sizes differently cannot be desynchronised, and one that merges
    trailers into headers cannot be handed a spoofed tenant)."""
    UP.reset()
    s = conn()
    st, hd, body = req(s, b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"0003;name=value\r\nabc\r\n" + b"0" * 200 + b"2 ; q=\"a;b\"\r\nde\r\n"
                          b"0\r\nX-Hee-Project: evil\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
    s.close()
    expect(st == 200 and echo(body)["body_len"] == 5, "body intact: %d %r" % (st, body[:100]))
    raw = UP.raw_tail
    tail = raw.split(b"\r\n\r\n", 1)[1]
    expect(tail == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "re-framed body: %r" % tail)


@test
def keepalive_reuse_both_sides():
    UP.reset()
    s = conn("other.test")
    for i in range(20):
        st, hd, body = req(s, b"GET /echo/%d HTTP/1.1\r\nHost: other.test\r\n\r\n" % i)
        expect(st == 200, "status")
    s.close()
    conns = {r["conn_id"] for r in UP.requests}
    expect(len(UP.requests) == 20, "20 requests upstream")
    expect(len(conns) == 1, "upstream connections used: %d" % len(conns))


@test
def pipelined_requests_in_order():
    s = conn()
    burst = b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i for i in range(10))
    burst += b"POST /echo/p HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc"
    s.sendall(burst)
    rest = b""
    for i in range(11):
        st, hd, body, rest = _read_with(s, rest)
        r = echo(body)
        want = "/echo/%d" % i if i < 10 else "/echo/p"
        expect(r["path"] == want, "response %d is for %s" % (i, r["path"]))
    s.close()


def _read_with(s, rest):
    class W:
        def __init__(self, s, rest):
            self.s, self.rest = s, rest

        def recv(self, n):
            if self.rest:
                d, self.rest = self.rest, b""
                return d
            return self.s.recv(n)
    return read_response(W(s, rest))


@test
def head_204_304_and_interim():
    s = conn()
    st, hd, body = req(s, b"HEAD /stream?n=5000 HTTP/1.1\r\nHost: app.test\r\n\r\n", head_only=True)
    expect(st == 200 and hd.get("content-length") == "5000", "HEAD keeps Content-Length")
    st, hd, body = req(s, b"GET /status/204 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(st == 204 and body == b"", "204")
    st, hd, body = req(s, b"GET /status/304 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(st == 304, "304")
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(st == 200, "keep-alive after HEAD/204/304")
    s.close()


@test
def expect_100_continue():
    s = conn()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 100, "interim 100, got %d" % st)
    s.sendall(b"hello")
    st, hd, body, rest = _read_with(s, rest)
    r = echo(body)
    expect(st == 200 and r["body_len"] == 5, "body after 100")
    expect(hdr(r, "expect") is None, "Expect is answered by the edge, not forwarded")
    # Expect is a list: 100-continue among other expectations still counts.
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nExpect: x, 100-continue\r\n\r\n")
    st, hd, body, rest = _read_with(s, rest)
    expect(st == 100, "interim 100 for a list, got %d" % st)
    s.sendall(b"hi")
    st, hd, body, rest = _read_with(s, rest)
    expect(st == 200 and echo(body)["body_len"] == 2, "body after the 100")
    s.close()


@test
def body_limits_413():
    s = conn("small.test")
    st, hd, body = req(s, b"POST /echo HTTP/1.1\r\nHost: small.test\r\nContent-Length: 1001\r\n\r\n")
    expect(st == 413, "project maxBodyBytes → 413, got %d" % st)
    expect(b"request id" in body, "error body carries the request id")
    s.close()
    s = conn("small.test")
    ok = b"POST /echo HTTP/1.1\r\nHost: small.test\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    st, hd, body = req(s, ok)
    expect(st == 200, "at the limit passes")
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3e8\r\n" + b"y" * 1000 + b"\r\n5\r\nyyyyy\r\n0\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 413, "chunked over the limit → 413, got %d" % st)
    s.close()
    # Over the limit only after part of the body went to the origin: still
    # a 413 for the client (the origin connection is dropped), not a bare close.
    s = conn("small.test")
    s.sendall(b"POST /slow?delay=2000 HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"258\r\n" + b"a" * 600 + b"\r\n")
    time.sleep(0.3)
    s.sendall(b"258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 413, "413 after part of the body was forwarded, got %d" % st)
    s.close()


@test
def host_must_match_sni():
    s = conn()
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: other.test\r\n\r\n")
    expect(st == 421, "421 on Host/SNI mismatch, got %d" % st)
    s.close()
    s = conn()
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: APP.test:443\r\n\r\n")
    expect(st == 200, "Host compared case-insensitively without port: %d" % st)
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: app.test.\r\n\r\n")
    expect(st == 200, "a trailing dot names the same host: %d" % st)
    expect(hdr(echo(body), "x-forwarded-host") == "app.test", "X-Forwarded-Host is the registered name")
    expect(hdr(echo(body), "host") == "app.test", "the origin gets Host without the dot: %r" % hdr(echo(body), "host"))
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: App.test.:443\r\n\r\n")
    expect(st == 200 and hdr(echo(body), "host") == "App.test:443", "port kept, dot dropped: %d %r"
           % (st, hdr(echo(body), "host") if st == 200 else None))
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: app.test..\r\n\r\n")
    expect(st == 421, "only one trailing dot: %d" % st)
    s.close()


@test
def only_websocket_upgrades_pass():
    """An h2c upgrade would make the connection a raw tunnel past every
    header Hee sets and every check it makes: it is forwarded as a plain
    request, and a 101 the origin sends anyway is a 502."""
    UP.reset()
    s = conn()
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    expect(st == 200, "plain request, got %d" % st)
    r = echo(body)
    expect(hdr(r, "upgrade") is None and hdr(r, "http2-settings") is None, "no upgrade forwarded: %r" % r["headers"])
    # The test origin answers /ws with 101 whatever it is asked.
    st, hd, body = req(s, b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    expect(st == 502, "an unasked 101 → 502, got %d" % st)
    s.close()
    s = conn()
    st, hd, body = req(s, b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
                          b"Upgrade: websocket\r\nUpgrade: h2c\r\n\r\n")
    expect(st == 200 and hdr(echo(body), "upgrade") is None, "two Upgrade lines: a plain request")
    s.close()


@test
def trace_405_and_options_star():
    UP.reset()
    s = conn()
    st, hd, body = req(s, b"TRACE /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(st == 405 and b"request id" in body, "TRACE → 405, got %d" % st)
    s.close()
    expect(not UP.requests, "the origin got nothing for TRACE")
    s = conn()
    st, hd, body = req(s, b"OPTIONS https://app.test HTTP/1.1\r\nHost: app.test\r\n\r\n")
    s.close()
    got = [q["target"] for q in UP.requests]
    expect(got == ["*"], "OPTIONS with an empty path is OPTIONS * (RFC 9112 3.2.4): %r" % got)


@test
def websocket_echo(host="app.test"):
    s = conn(host)
    # One request first: the connection then runs on tlsrec (TLS 1.3 taken
    # over from OpenSSL), so the tunnel is tested on that path too.
    st, hd, body = req(s, ("GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
    expect(st == 200, "request before the upgrade")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
    st, hd, body, rest = read_response(s)
    expect(st == 101, "101, got %d" % st)
    expect(hd.get("upgrade", "").lower() == "websocket", "Upgrade header relayed: %r" % hd)
    for size in (5, 300, 70000):
        payload = os.urandom(size)
        mask = os.urandom(4)
        hdrb = bytes([0x82])
        if size < 126:
            hdrb += bytes([0x80 | size])
        elif size < 65536:
            hdrb += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            hdrb += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        s.sendall(hdrb + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        need = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + size
        got = rest
        while len(got) < need:
            got += s.recv(65536)
        expect(got[-size:] == payload, "echo of %d bytes" % size)
        rest = got[need:]
    s.sendall(b"\x88\x80" + os.urandom(4))
    s.close()


@test
def fallback_then_502():
    st, hd, body = fetch(H, "fallback.test", "GET", "/echo", ca=CA)
    expect(st == 200, "fallback answered, got %d" % st)
    expect(any(r["path"] == "/echo" for r in UP2.requests), "fallback upstream got it")
    st, hd, body = fetch(H, "down.test", "GET", "/echo", ca=CA)
    expect(st == 502, "502 when nothing answers, got %d" % st)
    expect(b"request id" in body, "502 body has the request id")


@test
def upstream_timeout_504_and_connect_timeout_502():
    st, hd, body = fetch(H, "app.test", "GET", "/slow?delay=3000", ca=CA)
    expect(st == 504, "504 on a slow upstream, got %d" % st)
    port, close = blackhole()
    edge(H, CA, "blackhole.test", slug="bh", upstream="http://127.0.0.1:%d" % port)
    t0 = time.time()
    st, hd, body = fetch(H, "blackhole.test", "GET", "/x", ca=CA)
    expect(st == 502 and b"timed out" in body, "connect timeout → 502, got %d %r" % (st, body))
    expect(time.time() - t0 < 3, "connect timeout honoured")
    close()


@test
def primary_marked_down_goes_to_fallback():
    """A primary whose connect timed out is marked down for [edge]
    upstream_fail_timeout (3s here): the next requests go to the
    fallback at once instead of paying the connect timeout again, on every
    worker (new connections land on either of the two); once the mark
    expires the primary is tried again."""
    port, close = blackhole()
    edge(H, CA, "bhfb.test", slug="bhfb", upstream="http://127.0.0.1:%d" % port, fallback=UP2.url)
    marked, skips = metric(H, "hee_upstream_marked_down_total"), metric(H, "hee_upstream_down_skips_total")
    s = conn("bhfb.test")
    try:
        def timed(sock=s):
            t0 = time.time()
            st, hd, body = req(sock, b"GET /echo HTTP/1.1\r\nHost: bhfb.test\r\n\r\n")
            expect(st == 200, "the fallback answers: %d %r" % (st, body[:200]))
            return time.time() - t0
        took = timed()
        marked_at = time.time()
        expect(0.6 < took < 3, "first request pays one connect timeout: %.2fs" % took)
        fast = [timed() for _ in range(3)]
        expect(max(fast) < 0.5, "primary marked down: the fallback at once: %r" % fast)
        # Eight new connections: with a mark per worker, the ones the other
        # worker took would each pay the timeout once more.
        others = []
        for _ in range(8):
            t = conn("bhfb.test")
            try:
                others.append(timed(t))
            finally:
                t.close()
        expect(max(others) < 0.5, "every worker knows the mark: %r" % others)
        expect(wait_metric(H, "hee_upstream_marked_down_total", lambda v: v == marked + 1) == marked + 1, "marked down once")
        expect(wait_metric(H, "hee_upstream_down_skips_total", lambda v: v == skips + 11) == skips + 11,
               "eleven requests skipped the primary")
        time.sleep(max(0, marked_at + 3.2 - time.time()))
        took = timed()
        expect(0.6 < took < 3, "mark expired: the primary is tried again: %.2fs" % took)
    finally:
        s.close()
        close()


@test
def slow_upstream_and_slow_client():
    s = conn()
    s.sendall(b"GET /stream?n=2000000&delay=20&block=200000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    got = b""
    s.settimeout(20)
    # read slowly: 64 KB every 10 ms
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
        if b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= 2000000:
            break
        time.sleep(0.01)
    body = got.split(b"\r\n\r\n", 1)[1]
    expect(body == pattern(2000000), "slow transfer intact (%d bytes)" % len(body))
    s.close()


@test
def upstream_truncates_and_closes():
    s = conn()
    s.sendall(b"GET /truncate?n=10000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    got = recv_to_eof(s)
    expect(got.startswith(b"HTTP/1.1 200") and len(got.split(b"\r\n\r\n", 1)[1]) == 5000,
           "truncated body relayed then closed")
    s = conn()
    st, hd, body = req(s, b"GET /close HTTP/1.1\r\nHost: app.test\r\n\r\n")
    expect(st == 502, "origin closing without answer → 502, got %d" % st)
    s = conn()
    s.sendall(b"GET /eof-body?n=7777 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(len(body) == 7777 and hd.get("connection") == "close", "close-delimited body")


@test
def http10_client_gets_dechunked_body():
    s = conn()
    s.sendall(b"GET /stream?n=100000&chunked=1 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    head, body = recv_to_eof(s).split(b"\r\n\r\n", 1)
    expect(b"chunked" not in head.lower() and body == pattern(100000), "HTTP/1.0 body without chunking")


@test
def http10_keepalive_two_requests_one_connection():
    UP.reset()
    base = "https://app.test:%d" % H.tls_port
    r = curl_verbose(["--http1.0", "-H", "Connection: keep-alive", "--cacert", CA.path,
               "--resolve", "app.test:%d:127.0.0.1" % H.tls_port, "-o", "/dev/null", "-o", "/dev/null",
               base + "/echo/one", base + "/echo/two"])
    expect(r.returncode == 0, "curl --http1.0: %s" % r.stderr[-500:])
    expect(r.stderr.lower().count("< connection: keep-alive") == 2, "keep-alive answered: %s" % r.stderr[-800:])
    expect(curl_reused(r.stderr), "one client connection for both requests: %s" % r.stderr[-800:])
    expect([q["path"] for q in UP.requests] == ["/echo/one", "/echo/two"], "both forwarded")
    # Raw: a Content-Length response keeps it, a chunked one (no length for
    # a 1.0 client) closes, and 1.0 without keep-alive closes.
    s = conn()
    st, hd, body = req(s, b"GET /stream?n=3000 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n")
    expect(st == 200 and body == pattern(3000) and hd.get("connection") == "keep-alive", "framed 1.0 response")
    st, hd, body = req(s, b"GET /status/404 HTTP/1.0\r\nHost: other.test\r\nConnection: keep-alive\r\n\r\n")
    expect(st == 421 and hd.get("connection") == "close", "local error closes: %d %r" % (st, hd))
    s = conn()
    s.sendall(b"GET /stream?n=3000&chunked=1 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(hd.get("connection") == "close" and body == pattern(3000) and s.recv(10) == b"",
           "no length for a 1.0 client: close-delimited")
    s = conn()
    s.sendall(b"GET /stream?n=10 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(hd.get("connection") == "close" and s.recv(10) == b"", "plain 1.0 still closes")


@test
def access_log_lines():
    UP.reset()
    st, hd, body = fetch(H, "app.test", "GET", "/echo/logged?token=SECRET", ca=CA)

    def logged():  # written after the response, by the worker: poll for it
        with open(ACCESS) as f:
            return [ln for ln in f if "/echo/logged" in ln and ln.endswith("\n")]
    end = time.time() + 15
    lines = logged()
    while not lines and time.time() < end:
        time.sleep(0.05)
        lines = logged()
    expect(lines, "access line written")
    ln = lines[-1]
    expect("SECRET" not in ln and "token" not in ln, "no query string in the log: %s" % ln)
    for k in ("host=app.test", "method=GET", "status=200", "bytes=", "upstream=http://127.0.0.1",
              "rid=", "t_total_us=", "t_upstream_us="):
        expect(k in ln, "%s in %s" % (k, ln))


@test
def client_gone_while_waiting_is_499():
    """A client that leaves while the origin works is noticed at once:
    the origin connection is dropped and the request logged as 499 (not
    held until the response or upstream_timeout)."""
    s = conn()
    s.sendall(b"GET /slow/gone?delay=4000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    time.sleep(0.3)
    s.close()
    t0 = time.time()

    def logged():
        with open(ACCESS) as f:
            return [ln for ln in f if "/slow/gone" in ln and ln.endswith("\n")]
    lines = logged()
    while not lines and time.time() - t0 < 3:
        time.sleep(0.05)
        lines = logged()
    expect(lines and "status=499" in lines[-1], "logged as 499: %r" % lines)
    expect(time.time() - t0 < 2, "noticed at once, not when the origin answered: %.2fs" % (time.time() - t0))


@test
def metrics_count_requests():
    v = wait_metric(H, "hee_http_requests_total", lambda v: v > 10)
    expect(v > 10, "requests counted: %s" % v)
    expect(metric(H, 'hee_upstream_connections_total{kind="reused"}') > 0, "reuse counted")


@test
def https_upstreams():
    UPS.reset()
    s = conn("tlsup.test")
    for i in range(5):
        st, hd, body = req(s, b"GET /echo/%d HTTP/1.1\r\nHost: tlsup.test\r\n\r\n" % i)
        expect(st == 200 and echo(body)["path"] == "/echo/%d" % i, "https origin by name: %d" % st)
    expect(len({r["conn_id"] for r in UPS.requests}) == 1, "TLS upstream connection reused")
    data = os.urandom(300000)
    st, hd, body = req(s, b"POST /echo HTTP/1.1\r\nHost: tlsup.test\r\nContent-Length: %d\r\n\r\n" % len(data)
                       + data)
    expect(echo(body)["body_sha256"] == hashlib.sha256(data).hexdigest(), "upload over TLS upstream")
    st, hd, body = req(s, b"GET /stream?n=1000000&chunked=1 HTTP/1.1\r\nHost: tlsup.test\r\n\r\n")
    expect(body == pattern(1000000), "download over TLS upstream")
    s.close()
    st, hd, body = fetch(H, "tlsip.test", "GET", "/echo", ca=CA)
    expect(st == 200, "https origin by IP (IP SAN checked): %d" % st)
    st, hd, body = fetch(H, "tlsbad.test", "GET", "/echo", ca=CA)
    expect(st == 502 and b"TLS" in body, "certificate for another name → 502: %d %r" % (st, body))
    expect(UPS_BAD.requests == [], "nothing sent to an unverified origin")
    websocket_echo("tlsup.test")


@test
def upstream_name_tries_every_address():
    """twoaddr.test is ::1 (refused) then 127.0.0.1 (the origin): the
    refused address costs a retry, not a 502, and only until a worker
    learns the good one (one miss per worker at most)."""
    if not HEE_IN_NS:
        print("SKIP upstream_name_tries_every_address: no private mount namespace")
        return
    UP.reset()
    for i in range(6):
        # /conn-close: the origin closes, so every request needs a new connection.
        st, hd, body = fetch(H, "twoaddr.test", "GET", "/conn-close/%d" % i, ca=CA)
        expect(st == 200, "name whose first address refuses → next address: %d %r" % (st, body[:200]))
    expect(len({r["conn_id"] for r in UP.requests}) == 6, "one upstream connection per request")
    misses = sum(1 for ln in H.stderr_text().splitlines()
                 if "proxy.upstream_address_failed" in ln and "twoaddr.test" in ln)
    expect(1 <= misses <= 2, "the refused address is tried once per worker, then skipped: %d" % misses)

    # slowfirst.test: a full accept queue on [::1]:port drops SYNs, so the
    # first address times out ([edge] upstream_connect_timeout 700ms) and
    # the second one serves the request.
    _, close = blackhole(socket.AF_INET6, "::1", UP.port)
    try:
        t0 = time.time()
        st, hd, body = fetch(H, "slowfirst.test", "GET", "/echo", ca=CA)
        took = time.time() - t0
        expect(st == 200, "first address times out → next address: %d %r" % (st, body[:200]))
        expect(0.6 < took < 3, "one connect timeout paid, then served: %.2fs" % took)
    finally:
        close()

    # ::1 times out, 127.0.0.1 refuses: the 502 says the connect timed out.
    port, close = blackhole(socket.AF_INET6, "::1")
    try:
        edge(H, CA, "slowrefused.test", slug="slowrefused", upstream="http://slowfirst.test:%d" % port)
        st, hd, body = fetch(H, "slowrefused.test", "GET", "/echo", ca=CA)
        expect(st == 502 and b"timed out" in body, "timed out, then refused → 502 timed out: %d %r" % (st, body))
    finally:
        close()


def teardown():
    H.stop()
    UP.stop()
    UP2.stop()
    UPS.stop()
    UPS_BAD.stop()


if __name__ == "__main__":
    run(teardown=teardown)
