"""Edge on-demand issuance with the built-in CA: the first handshake for a
verified host without a certificate parks, asks the control thread once,
and completes when MSG_CERT_READY arrives; 20 parallel first handshakes
cause exactly one order; later handshakes come from the cache; the served
chain verifies against the local CA."""

import os
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, run, test  # noqa: E402
from upstream import Upstream  # noqa: E402
from edge_common import metric, read_response, seed_domain, seed_project, ssl_ctx  # noqa: E402

UP = Upstream()
H = Hee(conf={"edge": {"handshake_wait": "10s"}, "acme": {"directory": ""}})
PID = seed_project(H, "od", UP.url)
for n in ("first.od.test", "crowd.od.test"):
    seed_domain(H, n, PID, verified=True)


def get(host, ctx=None):
    ctx = ctx or ssl_ctx(None)
    t0 = time.time()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", H.tls_port), timeout=15), server_hostname=host)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    st, hd, body, rest = read_response(s)
    s.close()
    return st, time.time() - t0


@test
def first_handshake_waits_for_issuance():
    st, dt = get("first.od.test")
    expect(st == 200, "served after issuance: %d" % st)
    print("    first request on a never-seen name: %.0f ms" % (dt * 1000))
    rows = H.sql("SELECT count(*) FROM certificates WHERE hostname = 'first.od.test'")
    expect(rows[0][0] == 1, "one certificate stored")
    st, dt2 = get("first.od.test")
    expect(st == 200, "cached")
    print("    second request (cached certificate): %.0f ms" % (dt2 * 1000))
    ca = H.sql("SELECT cert_pem FROM local_ca")
    expect(ca, "local CA exists")
    path = os.path.join(tempfile.mkdtemp(), "ca.pem")
    open(path, "w").write(ca[0][0])
    ctx = ssl.create_default_context(cafile=path)
    st, _ = get("first.od.test", ctx)
    expect(st == 200, "chain verifies against the local CA")


@test
def concurrent_first_handshakes_one_order():
    started0 = metric(H, 'hee_issuance_total{result="started"}')
    results = []

    def one():
        try:
            results.append(get("crowd.od.test")[0])
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    expect(results.count(200) == 20, "all 20 served: %r" % results)
    rows = H.sql("SELECT count(*) FROM certificates WHERE hostname = 'crowd.od.test'")
    expect(rows[0][0] == 1, "exactly one certificate for 20 handshakes: %d" % rows[0][0])
    started = metric(H, 'hee_issuance_total{result="started"}') - started0
    expect(started <= 1, "orders started: %d" % started)


def teardown():
    H.stop()
    UP.stop()


if __name__ == "__main__":
    run(teardown=teardown)
