"""Edge request smuggling and limits: every malformed or oversized request
is answered by the edge (400/408/413/414/431/501/505, body with the request
id, connection closed) and the origin receives nothing at all; responses
with ambiguous framing from the origin become 502. One file, one attack per
case, exact bytes."""

import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, run, test  # noqa: E402
from upstream import Upstream  # noqa: E402
from edge_common import TestCA, edge, read_response, tls_client  # noqa: E402

TMP = tempfile.mkdtemp(prefix="edge-smuggle-")
UP = Upstream()
CA = TestCA(os.path.join(TMP, "ca"))
H = Hee(conf={"edge": {"header_timeout": "1s", "max_request_line": "1024", "max_header_bytes": "4096",
                       "max_headers": "20", "max_body_bytes": "100000"}})
edge(H, CA, "s.test", slug="s", upstream=UP.url)

H11 = b"HTTP/1.1\r\nHost: s.test\r\n"

CASES = [
    # (name, request bytes, expected status)
    ("cl_and_te", b"POST /x " + H11 + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_and_cl", b"POST /x " + H11 + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    ("differing_duplicate_cl", b"POST /x " + H11 + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ("cl_list_differing", b"POST /x " + H11 + b"Content-Length: 4, 5\r\n\r\nabcde", 400),
    ("cl_negative", b"POST /x " + H11 + b"Content-Length: -1\r\n\r\n", 400),
    ("cl_plus", b"POST /x " + H11 + b"Content-Length: +4\r\n\r\nabcd", 400),
    ("cl_hex", b"POST /x " + H11 + b"Content-Length: 0x4\r\n\r\nabcd", 400),
    ("te_not_chunked_last", b"POST /x " + H11 + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te_xchunked", b"POST /x " + H11 + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("te_chunked_twice", b"POST /x " + H11 + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_gzip_chunked", b"POST /x " + H11 + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_space_before_colon", b"POST /x " + H11 + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_http10", b"POST /x HTTP/1.0\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs_fold", b"GET /x " + H11 + b"X-A: 1\r\n continued\r\n\r\n", 400),
    ("bare_cr", b"GET /x " + H11 + b"X-A: a\rb\r\n\r\n", 400),
    ("bare_lf", b"GET /x HTTP/1.1\nHost: s.test\n\n", 400),
    ("nul_in_header", b"GET /x " + H11 + b"X-A: a\x00b\r\n\r\n", 400),
    ("ctl_in_header", b"GET /x " + H11 + b"X-A: a\x01b\r\n\r\n", 400),
    ("bad_chunk_size", b"POST /x " + H11 + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk_size_overflow", b"POST /x " + H11 + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    ("chunk_missing_crlf", b"POST /x " + H11 + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    ("no_host", b"GET /x HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET /x " + H11 + b"Host: s.test\r\n\r\n", 400),
    ("bad_host", b"GET /x HTTP/1.1\r\nHost: s.test/evil\r\n\r\n", 400),
    ("empty_host", b"GET /x HTTP/1.1\r\nHost: \r\n\r\n", 400),
    ("host_port_over_65535", b"GET /x HTTP/1.1\r\nHost: s.test:65536\r\n\r\n", 400),
    ("absolute_form_mismatch", b"GET http://other.test/x HTTP/1.1\r\nHost: s.test\r\n\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: s.test\r\n\r\n", 400),
    ("two_spaces", b"GET  /x HTTP/1.1\r\nHost: s.test\r\n\r\n", 400),
    ("lowercase_version", b"GET /x http/1.1\r\nHost: s.test\r\n\r\n", 400),
    ("http2_version", b"GET /x HTTP/2.0\r\nHost: s.test\r\n\r\n", 505),
    ("connect", b"CONNECT s.test:443 HTTP/1.1\r\nHost: s.test:443\r\n\r\n", 501),
    ("space_before_colon", b"GET /x " + H11 + b"X-A : b\r\n\r\n", 400),
    ("empty_header_name", b"GET /x " + H11 + b": b\r\n\r\n", 400),
    ("connection_names_host", b"GET /x " + H11 + b"Connection: host\r\n\r\n", 400),
    ("long_request_line", b"GET /" + b"a" * 1100 + b" " + H11 + b"\r\n", 414),
    ("long_head", b"GET /x " + H11 + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 400) for i in range(12)) + b"\r\n", 431),
    ("many_headers", b"GET /x " + H11 + b"".join(b"X-%d: v\r\n" % i for i in range(25)) + b"\r\n", 431),
    ("body_over_limit", b"POST /x " + H11 + b"Content-Length: 100001\r\n\r\n", 413),
]


def attack(data):
    s = tls_client(H, "s.test", CA)
    s.sendall(data)
    st, hd, body, rest = read_response(s)
    s.settimeout(3)
    closed = False
    try:
        closed = s.recv(100) == b""
    except (ConnectionResetError, socket.timeout, OSError):
        closed = True
    s.close()
    return st, hd, body, closed


def make_case(name, data, status):
    def fn():
        before = UP.raw_bytes
        st, hd, body, closed = attack(data)
        expect(st == status, "%s: expected %d, got %d %r" % (name, status, st, body))
        expect(b"request id" in body and hd.get("x-request-id", "") in body.decode(),
               "%s: body names the request id: %r" % (name, body))
        expect(closed, "%s: connection closed after the error" % name)
        time.sleep(0.05)
        expect(UP.raw_bytes == before, "%s: origin received %d bytes" % (name, UP.raw_bytes - before))
    fn.__name__ = "reject_" + name
    return fn


for n, d, st in CASES:
    test(make_case(n, d, st))


@test
def slowloris_head_times_out():
    before = UP.raw_bytes
    s = tls_client(H, "s.test", CA)
    s.sendall(b"GET /x HTTP/1.1\r\nHost: s.test\r\n")
    t0 = time.time()
    s.settimeout(5)
    for _ in range(3):
        try:
            s.sendall(b"X-A: b\r\n")
        except OSError:
            break
        time.sleep(0.3)
    st, hd, body, rest = read_response(s)
    expect(st == 408, "408 after header_timeout, got %d" % st)
    expect(time.time() - t0 < 3, "bounded by header_timeout")
    expect(UP.raw_bytes == before, "origin untouched")


@test
def split_request_bytes_still_parse():
    s = tls_client(H, "s.test", CA)
    data = b"POST /echo HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n"
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
    st, hd, body, rest = read_response(s)
    expect(st == 200 and b'"body_len": 4' in body, "byte-by-byte request: %d %r" % (st, body[:100]))


@test
def ambiguous_response_is_502():
    s = tls_client(H, "s.test", CA)
    s.sendall(b"GET /headers?Transfer-Encoding=chunked HTTP/1.1\r\nHost: s.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 502, "CL + TE from the origin → 502, got %d" % st)


@test
def daemon_still_serves():
    s = tls_client(H, "s.test", CA)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: s.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 200, "normal request after all attacks")
    expect(H.alive(), "daemon alive")


def teardown():
    H.stop()
    UP.stop()


if __name__ == "__main__":
    run(teardown=teardown)
