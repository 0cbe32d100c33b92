"""Edge plain-HTTP listener (port 80 in production): 308 to https for
registered hosts (path and query kept), 404 for unknown or removed hosts
and unknown ACME tokens, keep-alive, the same strict parser."""

import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, run, test  # noqa: E402
from edge_common import TestCA, curl_reused, curl_verbose, edge, read_response, seed_domain  # noqa: E402

TMP = tempfile.mkdtemp(prefix="edge-plain-")
CA = TestCA(os.path.join(TMP, "ca"))
H = Hee()
PID = edge(H, CA, "www.example.test", slug="plainp", upstream="http://127.0.0.1:9")
seed_domain(H, "new.example.test", PID, verified=False)
seed_domain(H, "old.example.test", PID, removed=True)
TLS_PORT = H.tls_port


def plain():
    return socket.create_connection(("127.0.0.1", H.http_port), timeout=10)


def ask(s, data):
    s.sendall(data)
    st, hd, body, rest = read_response(s, head_only=data.startswith(b"HEAD"))
    return st, hd, body


@test
def redirect_keeps_path_and_query():
    s = plain()
    st, hd, body = ask(s, b"GET /a/b?c=d&e=f HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
    expect(st == 308, "308, got %d" % st)
    expect(hd.get("location") == "https://www.example.test:%d/a/b?c=d&e=f" % TLS_PORT, hd.get("location"))
    st, hd, body = ask(s, b"GET / HTTP/1.1\r\nHost: WWW.Example.TEST:80\r\n\r\n")
    expect(st == 308 and hd.get("location") == "https://www.example.test:%d/" % TLS_PORT,
           "host lower-cased, port dropped: %r" % hd.get("location"))
    st, hd, body = ask(s, b"GET / HTTP/1.1\r\nHost: www.example.test.:80\r\n\r\n")
    expect(st == 308 and hd.get("location") == "https://www.example.test:%d/" % TLS_PORT,
           "a trailing dot names the same host: %d %r" % (st, hd.get("location")))
    st, hd, body = ask(s, b"HEAD /x HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
    expect(st == 308, "HEAD redirected")
    # No body after a HEAD answer: the next response on the connection
    # starts right after the head.
    st, hd, body = ask(s, b"GET /after-head HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
    expect(st == 308 and hd.get("location", "").endswith("/after-head"), "next answer in frame: %d %r" % (st, hd))
    # Long targets (tracking, OAuth parameters) keep their redirect.
    long_path = "/l?" + "q" * 4000
    st, hd, body = ask(s, ("GET %s HTTP/1.1\r\nHost: www.example.test\r\n\r\n" % long_path).encode())
    expect(st == 308 and hd.get("location") == "https://www.example.test:%d%s" % (TLS_PORT, long_path),
           "a 4 KB target redirected whole: %d" % st)
    s.close()


@test
def unverified_host_redirects_too():
    s = plain()
    st, hd, body = ask(s, b"GET /p HTTP/1.1\r\nHost: new.example.test\r\n\r\n")
    expect(st == 308, "registered (unverified) host → 308, got %d" % st)


@test
def unknown_and_removed_hosts_404():
    s = plain()
    for host in (b"nobody.test", b"old.example.test", b"nobody.test"):
        st, hd, body = ask(s, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        expect(st == 404, "%s → 404, got %d" % (host, st))
        expect(hd.get("x-request-id"), "request id on Hee's own answers")
    s.close()


@test
def acme_challenge_unknown_token_404():
    s = plain()
    st, hd, body = ask(s, b"GET /.well-known/acme-challenge/nosuchtoken HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
    expect(st == 404, "unknown token → 404 (not a redirect), got %d" % st)


@test
def bad_request_on_plain_port():
    s = plain()
    st, hd, body = ask(s, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    expect(st == 400, "strict parser here too: %d" % st)


@test
def http10_keepalive_withcurl_verbose():
    base = "http://www.example.test:%d" % H.http_port
    args = ["--http1.0", "-H", "Connection: keep-alive", "--resolve", "www.example.test:%d:127.0.0.1" % H.http_port,
            "-o", "/dev/null", "-o", "/dev/null", base + "/a", base + "/b"]
    r = curl_verbose(args)
    expect(r.returncode == 0 and r.stderr.count("< HTTP/1.1 308") == 2, "two 308s: %s" % r.stderr[-500:])
    expect(r.stderr.lower().count("< connection: keep-alive") == 2, "keep-alive answered")
    expect(curl_reused(r.stderr), "one connection for both: %s" % r.stderr[-800:])
    r = curl_verbose(["-d", "x=1&y=2"] + args)  # POST with a body, twice
    expect(r.returncode == 0 and r.stderr.count("< HTTP/1.1 308") == 2, "two POSTs: %s" % r.stderr[-500:])
    expect(curl_reused(r.stderr), "the body was consumed, the connection kept: %s" % r.stderr[-800:])


@test
def request_body_consumed_keeps_connection():
    s = plain()
    host = b"Host: www.example.test\r\n"
    st, hd, body = ask(s, b"POST /x HTTP/1.1\r\n" + host + b"Content-Length: 5\r\n\r\nhello")
    expect(st == 308 and hd.get("connection") is None, "308, kept: %d %r" % (st, hd))
    # The body arrives after the answer, in pieces.
    s.sendall(b"POST /y HTTP/1.1\r\n" + host + b"Content-Length: 20000\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 308 and rest == b"", "answered before the body")
    for _ in range(4):
        s.sendall(b"z" * 5000)
    s.sendall(b"POST /c HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
              b"GET /after HTTP/1.1\r\n" + host + b"\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 308, "chunked POST answered: %d" % st)
    st, hd, body, rest2 = read_response(_Pre(s, rest))
    expect(st == 308 and hd.get("location", "").endswith("/after"), "the request after the bodies: %r" % hd)
    # Too big to drain, or a bad chunk: closed as before.
    st, hd, body = ask(s, b"POST /big HTTP/1.1\r\n" + host + b"Content-Length: 1000000\r\n\r\n")
    expect(st == 308 and hd.get("connection") == "close", "big body: close")
    s = plain()
    st, hd, body = ask(s, b"POST /bad HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    expect(st == 308, "answered")
    expect(s.recv(100) == b"", "bad chunk in a dropped body: closed")


class _Pre:
    """A socket with some bytes already read."""

    def __init__(self, s, pre):
        self.s, self.pre = s, pre

    def recv(self, n):
        if self.pre:
            d, self.pre = self.pre, b""
            return d
        return self.s.recv(n)


def teardown():
    H.stop()


if __name__ == "__main__":
    run(teardown=teardown)
