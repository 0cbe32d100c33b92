"""Edge settings end to end: [edge] compact_idle_tls (yes: an idle TLS 1.3
connection leaves OpenSSL, counted; no: it never does; a reload switches new
connections), upstream_ca_bundle (https origins verified against it; a bad
bundle stops start-up), upstream_idle_conns / upstream_idle_timeout,
route_ttl, close_linger, loader_threads, cert_cache_hot_size; [server]
pin_workers (yes: each worker thread bound to its own CPU; default no: all float);
and private keys sealed with [store] key_encryption_key, opened by the
edge's loader."""

import json
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, expect, run, test  # noqa: E402
from upstream import Upstream  # noqa: E402
from edge_common import (TestCA, client_hello, edge, fetch, hello_verdict, metric, read_response,  # noqa: E402
                         seal_key, seed_cert, seed_domain, seed_project, sql_write, tls_client, wait_metric)

INTERNAL = 80
TAKEOVERS = "hee_tls_record_takeovers_total"
ACTIVE = "hee_connections_active"
TMP = tempfile.mkdtemp(prefix="edge-config-")
CA = TestCA(os.path.join(TMP, "ca"))
OTHER_CA = TestCA(os.path.join(TMP, "other-ca"))
KEK = os.urandom(32)
KEK_PATH = os.path.join(TMP, "kek")
with open(os.open(KEK_PATH, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
    f.write(KEK)

UP_ON, UP_OFF, UP_B = Upstream(), Upstream(), Upstream()
UPS = Upstream(tls=CA.files("localhost", ip="127.0.0.1"))             # signed by the bundle's CA
UPS_OTHER = Upstream(tls=OTHER_CA.files("localhost", ip="127.0.0.1"))  # signed by another CA

# ON: defaults where they matter, short pool and route lifetimes, sealed keys.
ON = Hee(conf={"server": {"pin_workers": "yes"},
               "edge": {"upstream_ca_bundle": CA.path, "upstream_idle_timeout": "1s", "route_ttl": "1s",
                        "loader_threads": "3", "cert_cache_hot_size": "1", "handshake_wait": "3s"},
               "store": {"key_encryption_key": KEK_PATH}})
# OFF: the conservative settings.
OFF = Hee(conf={"edge": {"compact_idle_tls": "no", "upstream_ca_bundle": CA.path, "upstream_idle_conns": "0",
                         "close_linger": "0", "loader_threads": "1", "handshake_wait": "3s"}})
for h, up in ((ON, UP_ON), (OFF, UP_OFF)):
    edge(h, CA, "a.test", slug="a", upstream=up.url)
    edge(h, CA, "b.test", slug="b", upstream=up.url)
edge(ON, CA, "tls.test", slug="tls", upstream=UPS.url)
edge(ON, CA, "untrusted.test", slug="untrusted", upstream=UPS_OTHER.url)


def get(s, host, path="/echo"):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
    st, hd, body, rest = read_response(s)
    expect(st == 200, "status %d" % st)
    return json.loads(body)


def requests_on_one_connection(h, host, n):
    s = tls_client(h, host, CA)
    try:
        expect(s.version() == "TLSv1.3", s.version())
        return [get(s, host) for _ in range(n)]
    finally:
        s.close()


@test
def compact_idle_tls_yes_takes_over():
    t0 = metric(ON, TAKEOVERS)
    requests_on_one_connection(ON, "a.test", 3)
    expect(wait_metric(ON, TAKEOVERS, lambda v: v >= t0 + 1) == t0 + 1, "one takeover for one idle connection")


@test
def compact_idle_tls_no_stays_on_openssl():
    t0 = metric(OFF, TAKEOVERS)
    requests_on_one_connection(OFF, "a.test", 3)
    time.sleep(0.3)
    expect(metric(OFF, TAKEOVERS) == t0 == 0, "no takeover with compact_idle_tls = no")


@test
def upstream_ca_bundle_verifies_https_origins():
    st, hd, body = fetch(ON, "tls.test", "GET", "/echo", ca=CA)
    expect(st == 200, "origin signed by the bundle's CA: %d" % st)
    st, hd, body = fetch(ON, "untrusted.test", "GET", "/echo", ca=CA)
    expect(st == 502, "origin signed by another CA: %d" % st)
    expect("upstream.tls_failed" in ON.stderr_text(), "verification failure logged")


@test
def bad_upstream_ca_bundle_stops_start_up():
    garbage = os.path.join(TMP, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    for path, reason in ((os.path.join(TMP, "missing.pem"), "No such file"), (garbage, "no certificate")):
        h = Hee(conf={"edge": {"upstream_ca_bundle": path}}, start=False)
        why = None
        try:
            h.start()
        except AssertionError as e:
            why = str(e)
        finally:
            h.kill()
            h.cleanup()
        expect(why is not None, "started with upstream_ca_bundle = %s" % path)
        expect("upstream_ca_bundle %s: %s" % (path, reason) in why, "reason names the setting: %s" % why[-500:])


@test
def upstream_idle_conns_zero_means_no_reuse():
    reused0 = metric(OFF, 'hee_upstream_connections_total{kind="reused"}')
    ids = {r["conn_id"] for r in requests_on_one_connection(OFF, "b.test", 3)}
    expect(len(ids) == 3, "a new upstream connection per request: %r" % ids)
    time.sleep(0.3)
    expect(metric(OFF, 'hee_upstream_connections_total{kind="reused"}') == reused0, "nothing reused")


@test
def upstream_idle_timeout_closes_pooled_connections():
    s = tls_client(ON, "b.test", CA)
    try:
        a, b = get(s, "b.test"), get(s, "b.test")
        expect(a["conn_id"] == b["conn_id"], "kept alive and reused: %r %r" % (a["conn_id"], b["conn_id"]))
        time.sleep(2.5)  # upstream_idle_timeout = 1s, swept every second
        c = get(s, "b.test")
        expect(c["conn_id"] != b["conn_id"], "idle upstream connection closed after upstream_idle_timeout")
    finally:
        s.close()


@test
def route_ttl_rereads_the_store():
    """A change written to the store by another process (no change notice)
    reaches the edge after route_ttl: 1s on ON, the default 5m on OFF."""
    for h in (ON, OFF):
        pid = seed_project(h, "moving", UP_ON.url if h is ON else UP_OFF.url)
        seed_domain(h, "move.test", pid)
        seed_cert(h, "move.test", *CA.issue("move.test"))
        n_b = len(UP_B.requests)
        expect(fetch(h, "move.test", "GET", "/echo", ca=CA)[0] == 200, "first request")
        sql_write(h, "UPDATE projects SET upstream = ? WHERE id = ?", (UP_B.url, pid))
        time.sleep(1.3)
        expect(fetch(h, "move.test", "GET", "/echo", ca=CA)[0] == 200, "second request")
        moved = len(UP_B.requests) - n_b
        expect(moved == (1 if h is ON else 0), "%s: requests at the new upstream: %d"
               % ("route_ttl 1s" if h is ON else "route_ttl 5m", moved))


def linger_seconds(h):
    """Sends a bad request on the plain port and keeps the socket open: how
    long the edge keeps the connection (reading and discarding) after its
    400."""
    expect(wait_metric(h, ACTIVE, lambda v: v == 0) == 0, "no edge connection open before")
    s = socket.create_connection(("127.0.0.1", h.http_port), timeout=5)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Header\r\n\r\nmore bytes")
        t0 = time.time()
        got = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        expect(got.startswith(b"HTTP/1.1 400"), "400 first: %r" % got[:40])
        expect(wait_metric(h, ACTIVE, lambda v: v == 0, timeout=6) == 0, "connection closed in the end")
        return time.time() - t0
    finally:
        s.close()


@test
def close_linger():
    on, off = linger_seconds(ON), linger_seconds(OFF)
    expect(1.5 <= on < 4, "close_linger = 2s: closed after %.2fs" % on)
    expect(off < 0.5, "close_linger = 0: closed after %.2fs" % off)


@test
def sealed_keys_opened_by_the_loader():
    chain, key = CA.issue("sealed.test")
    blob = seal_key(KEK, "sealed.test", key)
    if blob is None:
        print("SKIP sealed_keys_opened_by_the_loader: python3 'cryptography' module missing")
        return
    pid = seed_project(ON, "vault", UP_ON.url)
    seed_domain(ON, "sealed.test", pid)
    seed_cert(ON, "sealed.test", chain, blob, sealed=True)
    expect(requests_on_one_connection(ON, "sealed.test", 1)[0]["path"] == "/echo", "served with the sealed key")
    # The same blob under another row's name does not open (context = hostname).
    seed_domain(ON, "copied.test", pid)
    seed_cert(ON, "copied.test", CA.issue("copied.test")[0], blob, sealed=True)
    v = hello_verdict(ON.tls_port, client_hello("copied.test"))
    expect(v == ("alert", INTERNAL), "a key sealed for another host is refused: %r" % (v,))
    expect('host=copied.test reason="sealed key does not open' in ON.stderr_text(), "reason logged")
    # A daemon without the key cannot serve sealed rows.
    pid = seed_project(OFF, "vault", UP_OFF.url)
    seed_domain(OFF, "sealed.test", pid)
    seed_cert(OFF, "sealed.test", chain, blob, sealed=True)
    v = hello_verdict(OFF.tls_port, client_hello("sealed.test"))
    expect(v == ("alert", INTERNAL), "no key_encryption_key: refused: %r" % (v,))
    expect("no [store] key_encryption_key" in OFF.stderr_text(), "reason logged")
    body = key.split("-----")[2].strip().splitlines()[0]
    for h in (ON, OFF):
        expect(body not in h.stderr_text(), "private key bytes in a log")


@test
def loader_threads_started():
    def threads(h):
        return len(os.listdir("/proc/%d/task" % h.proc.pid))
    expect(threads(ON) - threads(OFF) == 2, "loader_threads 3 vs 1: %d vs %d threads" % (threads(ON), threads(OFF)))


def thread_ids(h):
    """{thread name: thread id} of the daemon (names from /proc, as ps -L shows them)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % h.proc.pid):
        with open("/proc/%d/task/%s/comm" % (h.proc.pid, tid)) as f:
            out[f.read().strip()] = int(tid)
    return out


def worker_cpus(h):
    """{worker thread name: CPUs it may run on}."""
    return {n: os.sched_getaffinity(t) for n, t in thread_ids(h).items() if n.startswith("hee-edge")}


@test
def pin_workers_binds_each_worker_to_its_own_cpu():
    usable = os.sched_getaffinity(ON.proc.pid)
    on, off = worker_cpus(ON), worker_cpus(OFF)
    expect(sorted(on) == sorted(off) == ["hee-edge0", "hee-edge1"], "named worker threads: %r %r" % (on, off))
    expect(all(cpus == usable for cpus in off.values()), "by default workers float: %r" % off)
    if len(usable) >= 2:
        first = sorted(usable)[:2]
        expect([on["hee-edge0"], on["hee-edge1"]] == [{first[0]}, {first[1]}], "one CPU each, in order: %r" % on)
        expect("pinned=yes" in ON.stderr_text(), "start-up line says so")
    else:  # more workers than CPUs: pinning would stack them, so they float
        expect(all(cpus == usable for cpus in on.values()), "one CPU: workers float: %r" % on)
        expect("edge.workers_unpinned" in ON.stderr_text(), "logged")
    missing = {"hee-control", "hee-background", "hee-loader0"} - set(thread_ids(ON))
    expect(not missing, "the other threads are named too; missing %r" % missing)


@test
def reload_switches_compact_idle_tls():
    with open(OFF.conf_path) as f:
        text = f.read()
    with open(OFF.conf_path, "w") as f:
        f.write(text.replace("compact_idle_tls = no", "compact_idle_tls = yes"))
    n = OFF.stderr_text().count("config.reloaded")
    OFF.proc.send_signal(signal.SIGHUP)
    end = time.time() + 5
    while time.time() < end and OFF.stderr_text().count("config.reloaded") == n:
        time.sleep(0.05)
    expect(OFF.stderr_text().count("config.reloaded") == n + 1, "reloaded")
    t0 = metric(OFF, TAKEOVERS)
    requests_on_one_connection(OFF, "a.test", 2)
    expect(wait_metric(OFF, TAKEOVERS, lambda v: v >= t0 + 1) == t0 + 1, "new connections follow the reload")


def teardown():
    for h in (ON, OFF):
        h.stop()
        h.cleanup()
    for u in (UP_ON, UP_OFF, UP_B, UPS, UPS_OTHER):
        u.stop()


if __name__ == "__main__":
    run(teardown=teardown)
