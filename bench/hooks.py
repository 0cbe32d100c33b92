#!/usr/bin/env python3
"""bench/hooks.py: webhook delivery throughput and latency against a local
receiver. Bounded: a few thousand requests, about a minute at most.

  python3 bench/hooks.py --bin build-rel/hee [--domains 500] [--endpoints 20]
                         [--rate 100] [--seconds 10]

1. Throughput. E endpoints are created through the API; with the daemon
   stopped, D domains with K events each (and one pending delivery per
   endpoint, as store_event_emit writes them) go straight into the store;
   the daemon starts and drains the outbox. deliveries/s = deliveries /
   (last arrival - first arrival); also hee's CPU time per delivery.
2. Latency. E2 (4) enabled endpoints; domains are registered at --rate per
   second for --seconds; for each delivery, change-to-first-attempt = its
   first arrival at the receiver - the event's createdAt (stamped in the
   committing transaction; same host clock). Reports p50/p90/p99/max.

The receiver is a minimal asyncio HTTP/1.1 server (keep-alive, answers 200
at once, no signature checks: test/lib/receiver.py does those in the tests).
Use a Release build (no sanitizers) for figures worth quoting.
"""

import argparse
import asyncio
import os
import re
import sys
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))

from heetest import Hee, free_port  # noqa: E402

ID_RE = re.compile(rb"\r\nwebhook-id: ([^\r]+)", re.I)
LEN_RE = re.compile(rb"\r\ncontent-length: (\d+)", re.I)
CREATED_RE = re.compile(rb'"createdAt":"([^"]+)"')


class FastReceiver:
    """Records (arrival time, webhook-id, createdAt) for every request."""

    def __init__(self):
        self.port = free_port()
        self.arrivals = []          # (t, b"path webhook-id", createdAt in s)
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def url(self, n=0):
        return "http://127.0.0.1:%d/hook/%d" % (self.port, n)

    def start(self):
        self.thread.start()
        self.ready.wait(5)
        return self

    def _run(self):
        asyncio.set_event_loop(self.loop)
        srv = self.loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", self.port, backlog=1024))
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            srv.close()

    async def _conn(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                m = LEN_RE.search(head)
                body = await reader.readexactly(int(m.group(1))) if m else b""
                now = time.time()
                mid = ID_RE.search(head)
                path = head.split(b" ", 2)[1]
                c = CREATED_RE.search(body)
                created = None
                if c:
                    created = datetime.strptime(c.group(1).decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
                    created = (created - datetime(1970, 1, 1)).total_seconds()
                with self.lock:
                    self.arrivals.append((now, path + b" " + (mid.group(1) if mid else b""), created))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def count(self):
        with self.lock:
            return len(self.arrivals)

    def snapshot(self):
        with self.lock:
            return list(self.arrivals)

    def reset(self):
        with self.lock:
            self.arrivals = []


def wait_count(rcv, n, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and rcv.count() < n:
        time.sleep(0.01)
    return rcv.count() >= n


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def cpu_seconds(pid):
    """user+system CPU time of the process so far (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill_outbox(db_path, project_id, endpoint_ids, domains, per_domain):
    """Writes domains (never probed), their events and one pending delivery
    per endpoint straight into the stopped daemon's store, the way
    store_event_emit would."""
    import sqlite3
    db = sqlite3.connect(db_path)
    now = int(time.time() * 1000)
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now / 1000))
    n = 0
    with db:
        for i in range(domains):
            host = "tp%05d.bench.example" % i
            cur = db.execute("INSERT INTO domains (hostname, project_id, state, verified, challenge, metadata, "
                             "sequence, created_at, updated_at) VALUES (?, ?, 'live', 1, 'c', "
                             "'{\"workspaceId\":\"ws_bench\"}', ?, ?, ?)", (host, project_id, per_domain, now, now))
            dom = cur.lastrowid
            for seq in range(1, per_domain + 1):
                n += 1
                pub = "evt_bench%08d" % n
                payload = ('{"id":"%s","type":"domain.monitor_updated","createdAt":"%s","sequence":%d,"data":'
                           '{"domain":{"hostname":"%s","projectSlug":"bench","verified":true,'
                           '"verifiedAt":"%s","createdAt":"%s","metadata":{"workspaceId":"ws_bench"},'
                           '"state":"live","ownershipChallenge":{"name":"_customdomain-challenge.%s","type":"TXT",'
                           '"value":"c"},"cnameTarget":"edge.hee.la","certificate":{"status":"issued",'
                           '"notAfter":"2027-01-01T00:00:00.000Z","issuer":"R11"},"removedAt":null},'
                           '"reason":"cert_renewed"}}') % (pub, created, seq, host, created, created, host)
                ev = db.execute("INSERT INTO events (public_id, project_id, domain_id, type, sequence, created_at, "
                                "payload) VALUES (?, ?, ?, 'domain.monitor_updated', ?, ?, ?)",
                                (pub, project_id, dom, seq, now, payload)).lastrowid
                db.executemany("INSERT INTO deliveries (event_id, endpoint_id, domain_id, status, attempts, "
                               "next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                               [(ev, e, dom, now, now) for e in endpoint_ids])
    db.close()
    return n * len(endpoint_ids)


def throughput(h, client, rcv, domains, endpoints, per_domain):
    eps = []
    for n in range(endpoints):
        r = client.post("/v1/webhook-endpoints", {"url": rcv.url(n), "events": []})
        assert r.status == 201, r
        eps.append(r.json()["endpoint"]["id"])
    project_id = h.sql("SELECT id FROM projects WHERE slug = 'bench'")[0][0]
    h.stop()
    total = fill_outbox(h.db_path, project_id, eps, domains, per_domain)
    rcv.reset()
    h.start()
    cpu0 = cpu_seconds(h.proc.pid)
    ok = wait_count(rcv, total, 120)
    cpu = cpu_seconds(h.proc.pid) - cpu0
    arr = rcv.snapshot()
    first = min(a[0] for a in arr)
    last = max(a[0] for a in arr)
    # Per endpoint and domain, the sequence numbers must arrive in order.
    for eid in eps:
        client.delete("/v1/webhook-endpoints/" + eid)
    return {"deliveries": len(arr), "expected": total, "complete": ok, "seconds": last - first,
            "per_s": (len(arr) - 1) / (last - first) if last > first else 0.0,
            "cpu_us_per_delivery": cpu * 1e6 / max(1, len(arr)),
            "cpu_bound_per_s": len(arr) / cpu if cpu > 0 else float("inf")}


def latency(h, client, rcv, rate, seconds, endpoints):
    eps = []
    for n in range(endpoints):
        r = client.post("/v1/webhook-endpoints", {"url": rcv.url(n), "events": ["domain.created"]})
        assert r.status == 201, r
        eps.append(r.json()["endpoint"]["id"])
    rcv.reset()
    n = int(rate * seconds)
    start = time.time()
    for i in range(n):
        due = start + i / float(rate)
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        r = client.post("/v1/edge/domains", {"hostname": "lat%05d.bench.example" % i})
        assert r.status == 201, r
    ok = wait_count(rcv, n * endpoints, 30)
    first = {}
    for t, mid, created in rcv.snapshot():
        key = mid
        if key not in first and created is not None:
            first[key] = t - created
    lat_ms = [v * 1000.0 for v in first.values()]
    for eid in eps:
        client.delete("/v1/webhook-endpoints/" + eid)
    return {"events": n, "deliveries": rcv.count(), "complete": ok, "p50_ms": pct(lat_ms, 50),
            "p90_ms": pct(lat_ms, 90), "p99_ms": pct(lat_ms, 99), "max_ms": max(lat_ms) if lat_ms else float("nan")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("HEE_BIN"), help="hee binary (Release build)")
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--per-domain", type=int, default=2, help="events per domain in the throughput run")
    ap.add_argument("--rate", type=float, default=100.0, help="registrations per second in the latency run")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--per-endpoint", type=int, default=4)
    a = ap.parse_args()
    if not a.bin:
        ap.error("--bin or HEE_BIN is required")
    a.domains = min(a.domains, 5000)
    a.per_domain = max(1, min(a.per_domain, 20))
    a.endpoints = min(a.endpoints, 100)
    a.seconds = min(a.seconds, 30.0)
    rcv = FastReceiver().start()
    conf = {"webhooks": {"allow_private": "127.0.0.0/8", "allow_http": "yes",
                         "concurrency": a.concurrency, "per_endpoint": a.per_endpoint},
            "verify": {"resolvers": "127.0.0.1:%d" % free_port(), "dns_timeout": "200ms", "dns_attempts": 1,
                       "pending_interval": "1h"},
            "log": {"level": "warn"}}
    h = Hee(conf, bin=a.bin)
    try:
        client = h.new_project("bench", maxDomains=100000)
        tp = throughput(h, client, rcv, a.domains, a.endpoints, a.per_domain)
        print("throughput: %(deliveries)d/%(expected)d deliveries in %(seconds).2fs = %(per_s).0f deliveries/s "
              "(complete=%(complete)s)" % tp, flush=True)
        print("hee CPU: %(cpu_us_per_delivery).0f us per delivery, i.e. %(cpu_bound_per_s).0f deliveries/s per "
              "core of hee CPU" % tp, flush=True)
        print("machine load average: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
        lat = latency(h, client, rcv, a.rate, a.seconds, 4)
        print("latency: %(events)d events x 4 endpoints, change-to-first-attempt p50 %(p50_ms).1f ms, "
              "p90 %(p90_ms).1f ms, p99 %(p99_ms).1f ms, max %(max_ms).1f ms (complete=%(complete)s)" % lat,
              flush=True)
        h.stop()
    finally:
        h.cleanup()


if __name__ == "__main__":
    main()
