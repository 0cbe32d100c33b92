"""Edge life cycle and memory: 100 MB bodies both ways without RSS growth,
SIGHUP reload with connections open (they survive), clean shutdown with a
request in flight (it completes, idle connections close, exit code 0), and
the memory an idle TLS connection costs."""

import hashlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, peer_closed, run, test  # noqa: E402
from upstream import Upstream, pattern  # noqa: E402
from edge_common import TestCA, edge, read_response, rss_kb, tls_client  # noqa: E402

TMP = tempfile.mkdtemp(prefix="edge-life-")
UP = Upstream()
CA = TestCA(os.path.join(TMP, "ca"))
ASAN = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1"}
H = Hee(env=ASAN, conf={"server": {"grace_period": "5s"}, "edge": {"upstream_timeout": "30s"}})
edge(H, CA, "big.test", slug="big", upstream=UP.url)
MB = 1 << 20


def wait_for(cond, timeout=15.0):
    """Polls cond() until true (or timeout, generous for loaded CI machines)."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def body_stream(sock, n, block=256 * 1024):
    sent = 0
    h = hashlib.sha256()
    while sent < n:
        k = min(block, n - sent)
        d = pattern(k, sent)
        h.update(d)
        sock.sendall(d)
        sent += k
    return h.hexdigest()


@test
def hundred_mb_upload_without_growth():
    rss0 = rss_kb(H.proc.pid)
    s = tls_client(H, "big.test", CA, timeout=120)
    n = 100 * MB
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: big.test\r\nContent-Length: %d\r\n\r\n" % n)
    peak = [rss0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(H.proc.pid))
            time.sleep(0.05)
    t = threading.Thread(target=watch)
    t.start()
    digest = body_stream(s, n)
    st, hd, body, rest = read_response(s)
    done.set()
    t.join()
    import json
    r = json.loads(body)
    expect(st == 200 and r["body_len"] == n and r["body_sha256"] == digest, "100 MB upload intact")
    expect(peak[0] - rss0 < 20 * 1024, "RSS grew %d KB during a 100 MB upload" % (peak[0] - rss0))
    s.close()


@test
def hundred_mb_download_chunked_without_growth():
    rss0 = rss_kb(H.proc.pid)
    s = tls_client(H, "big.test", CA, timeout=120)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")  # then the download runs on tlsrec
    read_response(s)
    n = 100 * MB
    s.sendall(b"GET /stream?n=%d&chunked=1&block=1048576 HTTP/1.1\r\nHost: big.test\r\n\r\n" % n)
    peak = rss0
    got = 0
    h = hashlib.sha256()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    expect(b"chunked" in head.lower(), "chunked relayed")
    # decode chunks as they come
    while True:
        while b"\r\n" not in buf:
            buf += s.recv(1 << 20)
        line, buf = buf.split(b"\r\n", 1)
        size = int(line, 16)
        if size == 0:
            break
        while len(buf) < size + 2:
            buf += s.recv(1 << 20)
        h.update(buf[:size])
        got += size
        buf = buf[size + 2:]
        if got % (8 * MB) < size:
            peak = max(peak, rss_kb(H.proc.pid))
    expect(got == n and h.hexdigest() == hashlib.sha256(pattern(n)).hexdigest(), "100 MB download intact")
    expect(peak - rss0 < 20 * 1024, "RSS grew %d KB during a 100 MB download" % (peak - rss0))
    s.close()


@test
def idle_tls_connections_are_small():
    n = 300
    socks = []
    rss0 = rss_kb(H.proc.pid)
    for i in range(n):
        s = tls_client(H, "big.test", CA)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")
        read_response(s)
        socks.append(s)
    time.sleep(0.5)
    per = (rss_kb(H.proc.pid) - rss0) * 1024 / n
    print("    idle TLS connection: %.1f KB each (more under ASan)" % (per / 1024))
    expect(per < 32 * 1024, "idle connection costs %.1f KB" % (per / 1024))
    for s in socks:
        s.close()


@test
def sighup_reload_keeps_connections():
    s = tls_client(H, "big.test", CA)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 200, "before reload")
    with open(H.conf_path, "a") as f:
        f.write("\n[edge]\nidle_timeout = 61s\n")
    H.proc.send_signal(signal.SIGHUP)
    expect(wait_for(lambda: "config.reloaded" in H.stderr_text()), "reload logged")
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")
    st, hd, body, rest = read_response(s)
    expect(st == 200, "same connection works after SIGHUP")
    s2 = tls_client(H, "big.test", CA)
    s2.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")
    expect(read_response(s2)[0] == 200, "new connections after SIGHUP")
    s.close()
    s2.close()


@test
def shutdown_finishes_inflight_request():
    busy = tls_client(H, "big.test", CA, timeout=15)
    idle = tls_client(H, "big.test", CA, timeout=15)
    idle.sendall(b"GET /echo HTTP/1.1\r\nHost: big.test\r\n\r\n")
    read_response(idle)
    n0 = len(UP.requests)
    busy.sendall(b"GET /slow?delay=1500 HTTP/1.1\r\nHost: big.test\r\n\r\n")
    # In flight means at the origin (which then takes 1.5 s to answer).
    expect(wait_for(lambda: any(r["path"] == "/slow" for r in UP.requests[n0:])), "request reached the origin")
    H.proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    st, hd, body, rest = read_response(busy)
    expect(st == 200, "in-flight request completed during drain: %d" % st)
    expect(hd.get("connection") == "close", "and told the client the connection ends")
    expect(peer_closed(idle), "idle keep-alive connection closed at drain")
    rc = H.proc.wait(timeout=10)
    expect(rc == 0, "clean exit: rc=%s" % rc)
    expect(time.time() - t0 < 6, "within the grace period")
    try:
        socket.create_connection(("127.0.0.1", H.tls_port), timeout=1)
        expect(False, "still listening")
    except OSError:
        pass


def teardown():
    text = H.stderr_text()
    H.proc = None
    UP.stop()
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        expect(mark not in text, "sanitizer report: %s" % text[-3000:])


if __name__ == "__main__":
    run(teardown=teardown)
