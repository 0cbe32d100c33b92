"""The API's own HTTP/1.1 layer (control/api_http.c) on raw sockets: every
refusal is the API's JSON error {"error":{code,message,ref}} — malformed
request lines, missing Host, heads and bodies over the limits, chunked
bodies — and the connection closes after it; keep-alive, pipelining, HEAD,
HTTP/1.0, "Expect: 100-continue" and clients that vanish mid-request."""
import json
import socket
import time

from heetest import Hee, expect, run, test

H = Hee(conf={"api": {"rate_limit": "0", "max_body": "4096"}})


def connect():
    return socket.create_connection(("127.0.0.1", H.api_port), timeout=10)


def read_response(s, buf=b"", head_only=False):
    """One response from s: (status, headers, body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        expect(chunk, "connection closed before a response head: %r" % buf)
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    if status == 100:
        return read_response(s, buf, head_only)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = 0 if head_only else int(headers.get("content-length", "0"))
    while len(buf) < n:
        chunk = s.recv(65536)
        expect(chunk, "connection closed inside a body")
        buf += chunk
    return status, headers, buf[:n], buf[n:], lines[0]


def closed(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def expect_json_error(status, headers, body, want_status, code="invalid"):
    expect(status == want_status, "wanted %d, got %d %r" % (want_status, status, body))
    expect(headers.get("content-type", "").startswith("application/json"), headers)
    err = json.loads(body)["error"]
    expect(err["code"] == code and err["message"] and err["ref"].startswith("ref_"), err)


def one(raw):
    s = connect()
    s.sendall(raw)
    status, headers, body, _, line = read_response(s)
    return s, status, headers, body, line


@test
def malformed_heads_get_json_and_a_close():
    cases = [(b"GARBAGE\r\n\r\n", 400),
             (b"GET /healthz HTTP/1.1\r\n\r\n", 400),                      # no Host
             (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
             (b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", 505),
             (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
             (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: %s\r\n" % (b"p" * 8000) * 5 + b"\r\n", 431)]
    for raw, want in cases:
        s, status, headers, body, line = one(raw)
        expect(line.startswith("HTTP/1.1 "), line)
        expect_json_error(status, headers, body, want)
        expect(headers.get("connection") == "close", headers)
        expect(closed(s), "still open after %r" % raw[:40])
        s.close()


@test
def bodies_over_the_limits_get_json_413():
    c = H.admin()
    # well over 4 x max_body: refused from the head alone, body never sent
    s, status, headers, body, _ = one(b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                                      b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
                                      % c.token.encode())
    expect_json_error(status, headers, body, 413)
    expect(closed(s))
    s.close()
    # the body is on its way all the same: the answer still arrives
    s = connect()
    s.sendall(b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 3000000\r\n\r\n" + b"x" * 500000)
    status, headers, body, _, _ = read_response(s)
    expect_json_error(status, headers, body, 413)
    expect(closed(s))
    s.close()
    # a little over max_body: read, then refused by the router
    big = json.dumps({"slug": "big", "upstream": "http://127.0.0.1:9", "pad": "x" * 5000})
    r = c.post("/v1/projects", raw=big.encode())
    expect(r.status == 413 and r.error_code == "invalid", r)


@test
def chunked_bodies_get_json_411():
    s, status, headers, body, _ = one(b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                      b"Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    expect_json_error(status, headers, body, 411)
    expect(closed(s))
    s.close()


@test
def pipelined_requests_are_answered_in_order():
    c = H.new_project("pipe", scopes=("connections:read", "connections:write"))
    expect(c.post("/v1/edge/domains", {"hostname": "pipe.example.com", "metadata": {"k": [1, 2]}}).status == 201)
    auth = b"Authorization: Bearer " + c.token.encode() + b"\r\n"
    reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/edge/resolve?hostname=pipe.example.com HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
            b"GET /v1/edge/resolve?hostname=none.example.com HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
            b"POST /v1/edge/domains HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: application/json\r\nContent-Length: 32\r\n\r\n{\"hostname\":\"pipe2.example.com\"}"
            b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    s = connect()
    s.sendall(reqs)
    got, buf = [], b""
    for _ in range(5):
        status, headers, body, buf, _ = read_response(s, buf)
        got.append((status, body))
    expect([g[0] for g in got] == [200, 200, 404, 201, 404], got)
    expect(json.loads(got[1][1])["metadata"] == {"k": [1, 2]}, got[1])
    # still open (keep-alive) after all five
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(read_response(s, buf)[0] == 200)
    s.close()


@test
def head_http10_and_expect_continue():
    s = connect()
    s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, buf, _ = read_response(s, head_only=True)
    expect(status == 200 and headers.get("content-length") == "16" and body == b"" and buf == b"", (headers, buf))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(read_response(s, buf)[2] == b'{"status":"ok"}\n')
    s.close()
    s, status, headers, body, line = one(b"GET /readyz HTTP/1.0\r\n\r\n")
    expect(status == 200 and line.startswith("HTTP/1.0 ") and headers.get("connection") == "close", line)
    expect(closed(s))
    s.close()
    c = H.admin()
    s = connect()
    payload = json.dumps({"slug": "cont", "upstream": "http://127.0.0.1:9"}).encode()
    s.sendall(b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (c.token.encode(), len(payload)))
    interim = s.recv(1024)
    expect(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim)
    s.sendall(payload)
    expect(read_response(s)[0] == 201)
    s.close()


@test
def vanishing_clients_leave_the_daemon_serving():
    for raw in (b"GET /healthz HTTP/1.1\r\nHo",
                b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"):
        s = connect()
        s.sendall(raw)
        s.close()
    # a deferred reply (registration batch) whose client is gone
    c = H.new_project("gone", scopes=("connections:read", "connections:write"))
    body = b'{"hostname":"gone.example.com"}'
    s = connect()
    s.sendall(b"POST /v1/edge/domains HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (c.token.encode(), len(body), body))
    s.close()
    time.sleep(0.2)
    expect(H.alive())
    expect(H.client().get("/healthz").status == 200)
    expect(c.get("/v1/edge/resolve?hostname=gone.example.com").status == 200)


@test
def connections_beyond_the_cap_wait_for_a_slot():
    """[api] max_connections: the next connection waits in the backlog (no
    answer, not refused) until one of the open ones closes."""
    h = Hee(conf={"api": {"max_connections": "3"}})
    try:
        held = [socket.create_connection(("127.0.0.1", h.api_port), timeout=10) for _ in range(3)]
        end = time.time() + 10  # all three accepted: the daemon says the cap is reached
        while "api.connections_full" not in h.stderr_text() and time.time() < end:
            time.sleep(0.02)
        extra = socket.create_connection(("127.0.0.1", h.api_port), timeout=10)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(0.5)
        try:
            early = extra.recv(1)
        except socket.timeout:
            early = None
        expect(early is None, "answered beyond the cap: %r" % early)
        held.pop().close()
        extra.settimeout(10)
        status = read_response(extra)[0]
        expect(status == 200, status)
        expect("api.connections_full" in h.stderr_text(), "no log line for the full API")
        for s in held + [extra]:
            s.close()
    finally:
        h.stop()
        h.cleanup()


def teardown():
    H.stop()
    H.cleanup()


if __name__ == "__main__":
    run(teardown=teardown)
