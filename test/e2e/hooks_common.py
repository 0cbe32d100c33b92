"""hooks_common: shared pieces of the webhook end-to-end tests (hooks_*.py).

Every daemon here allows the loopback receiver (allow_private = 127.0.0.0/8,
allow_http = yes, except where a test says otherwise), retries on a shrunk
schedule, and points DNS probes at a closed loopback port so that no test
sends a packet off the machine.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from heetest import Hee, expect, free_port  # noqa: E402
from receiver import Receiver  # noqa: E402

FAST_SCHEDULE = "300ms,300ms,300ms,500ms"


def hook_conf(**webhooks):
    wh = {"allow_private": "127.0.0.0/8", "allow_http": "yes", "retry_schedule": FAST_SCHEDULE,
          "timeout": "5s"}
    wh.update({k: v for k, v in webhooks.items()})
    return {"webhooks": wh,
            "verify": {"resolvers": "127.0.0.1:%d" % free_port(), "dns_timeout": "200ms", "dns_attempts": 1}}


def wait_until(fn, timeout=15.0, what="condition", interval=0.05):
    """Polls fn() until truthy; returns its value or raises AssertionError."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last=%r)" % (timeout, what, last))


def create_endpoint(client, url, events=None, **fields):
    body = {"url": url, "events": events if events is not None else []}
    body.update(fields)
    r = client.post("/v1/webhook-endpoints", body)
    expect(r.status == 201, "endpoint create: %r" % r)
    ep = r.json()["endpoint"]
    expect(ep["id"].startswith("whe_") and ep["secret"].startswith("whsec_"), "endpoint shape: %r" % ep)
    return ep


def add_domain(client, host):
    r = client.post("/v1/edge/domains", {"hostname": host})
    expect(r.status == 201, "domain create %s: %r" % (host, r))
    return r.json()["domain"]


def del_domain(client, host):
    r = client.delete("/v1/edge/domains/" + host)
    expect(r.status in (200, 204), "domain delete %s: %r" % (host, r))


def hostname(d):
    """The hostname a delivery is about (domain events carry data.domain)."""
    try:
        return d.json["data"]["domain"]["hostname"]
    except (TypeError, KeyError):
        return None


def by_domain(deliveries):
    """{(hostname, domain createdAt): [delivery, …]} in arrival order."""
    out = {}
    for d in deliveries:
        if d.json and "domain" in d.json.get("data", {}):
            dom = d.json["data"]["domain"]
            out.setdefault((dom["hostname"], dom["createdAt"]), []).append(d)
    return out


def check_domain_order(deliveries):
    """Per domain, every arrival (failed ones included) carries the sequence
    right after the last one answered 2xx: nothing overtakes, nothing is
    skipped. Returns {domain: [sequences delivered]}."""
    done = {}
    for key, ds in by_domain(deliveries).items():
        delivered = []
        for d in ds:
            seq = d.json["sequence"]
            if seq in delivered:
                continue  # an at-least-once duplicate of something delivered
            expect(seq == (delivered[-1] + 1 if delivered else 1),
                   "domain %s: sequence %d arrived after %r" % (key[0], seq, delivered))
            if d.status is not None and 200 <= d.status < 300:
                delivered.append(seq)
        done[key] = delivered
    return done


def attempts(client, endpoint_id, limit=100):
    r = client.get("/v1/webhook-endpoints/%s/attempts?limit=%d" % (endpoint_id, limit))
    expect(r.status == 200, "attempts: %r" % r)
    return r.json()["attempts"]


def endpoint(client, endpoint_id):
    r = client.get("/v1/webhook-endpoints/" + endpoint_id)
    expect(r.status == 200, "endpoint get: %r" % r)
    return r.json()["endpoint"]


def pending(h):
    return h.sql("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
