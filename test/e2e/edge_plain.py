"""Edge plain-HTTP listener (port 80 in production): 308 to https for
registered hosts (path and query kept), 404 for unknown or removed hosts
and unknown ACME tokens, keep-alive, the same strict parser."""

import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, run, test  # noqa: E402
from edge_common import TestCA, edge, read_response, seed_domain  # noqa: E402

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
    st, hd, body = ask(s, b"HEAD /x HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
    expect(st == 308, "HEAD redirected")
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


def teardown():
    H.stop()


if __name__ == "__main__":
    run(teardown=teardown)
