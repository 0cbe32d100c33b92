"""End-to-end: ACME issuance through the real daemon and its edge against
Debian's Pebble on loopback (skipped when pebble or knotd is missing).

  - always-valid Pebble: the first handshake to a never-seen name gets a
    certificate whose chain verifies to Pebble's root; 50 handshakes to one
    new name make one order; 20 names one after another and 50 at once give
    the latency figures ("figure ..." lines).
  - validating Pebble (-dnsserver = a knot zone mapping the test names to
    127.0.0.1; httpPort/tlsPort = the edge's ports): http-01 answered by the
    edge's port-80 listener, tls-alpn-01 by its TLS listener.
  - CA down: Pebble stopped → the handshake fails, backoff is recorded; a
    new Pebble (reload with its URL) → the next attempt after the backoff
    succeeds. Restart: certificates kept, no new order.
  - renewal with Pebble's short-lived certificates (certificateValidityPeriod).
"""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heetest import Hee, expect, run, test  # noqa: E402
from issuer_lib import add_verified, handshake, handshakes, metric, stats  # noqa: E402
from pebble import Pebble  # noqa: E402

STARTED = ("hee_issuance_total", '{result="started"}')
RENEWED = ("hee_renewals_total", '{result="ok"}')

if not shutil.which("pebble") or not shutil.which("knotd"):
    print("SKIP: pebble or knotd not installed")
    sys.exit(0)

from dnsserver import DnsServer  # noqa: E402


def pebble_root(p):
    path = os.path.join(p.workdir, "root.pem")
    with open(path, "w") as f:
        f.write(p.root_pem())
    return path


def daemon(pebble_factory, challenges="tls-alpn-01 http-01", extra=None):
    """A Hee whose edge ports Pebble validates against: ports are chosen
    first, Pebble starts knowing them, then the daemon with Pebble's URL."""
    h = Hee(start=False, conf=dict({"edge": {"handshake_wait": "20s", "negative_ttl": "200ms"},
                                    "acme": {"backoff_base": "1s", "backoff_max": "4s"}}, **(extra or {})))
    p = pebble_factory(h)
    p.start()
    with open(h.conf_path, "a") as f:
        f.write("[acme]\ndirectory = %s\nca_bundle = %s\nchallenges = %s\n" % (p.directory_url, p.ca_file, challenges))
    h.start()
    h.new_project("shop", settings={"verification": "registration"})
    return h, p


def shutdown(h, p):
    try:
        h.stop()
        h.cleanup()
    finally:
        p.stop()


def events(h, host, etype):
    return h.sql("SELECT COUNT(*) FROM events e JOIN domains d ON d.id = e.domain_id"
                  " WHERE d.hostname = ? AND e.type = ?", (host, etype))[0][0]


@test
def always_valid_issuance_and_figures():
    h, p = daemon(lambda h: Pebble(always_valid=True, http_port=h.http_port, tls_port=h.tls_port),
                  extra={"log": {"level": "debug"}})
    try:
        root = pebble_root(p)
        warm = "warm.acme-shop.com"
        add_verified(h, [warm], "shop")
        r = handshake(h.tls_port, warm, root)
        expect(r["ok"], "first-ever: %s" % r["error"])
        print("figure acme first-ever issuance (incl. account): %.0f ms" % r["ms"])
        expect(h.sql("SELECT issuer FROM certificates WHERE hostname = ?", (warm,)) == [(p.directory_url,)], "issuer")
        expect(events(h, warm, "ssl.issued") == 1 and events(h, warm, "domain.flow.completed") == 1, "events")
        expect(h.sql("SELECT COUNT(*) FROM acme_accounts WHERE kid IS NOT NULL")[0][0] == 1, "account stored")

        crowd = "crowd.acme-shop.com"
        add_verified(h, [crowd], "shop")
        before = metric(h, *STARTED)
        res = handshakes(h.tls_port, [crowd] * 50, root)
        expect(all(x["ok"] for x in res), "crowd: %s" % [x["error"] for x in res if not x["ok"]][:3])
        expect(metric(h, *STARTED) - before == 1, "orders for one name: %s" % (metric(h, *STARTED) - before))

        seq = ["s%d.acme-shop.com" % i for i in range(20)]
        add_verified(h, seq, "shop")
        first, cached = [], []
        for n in seq:
            a = handshake(h.tls_port, n, root)
            expect(a["ok"], "%s: %s" % (n, a["error"]))
            first.append(a["ms"])
            cached.append(handshake(h.tls_port, n, root)["ms"])
        med, p90, mx = stats(first)
        print("figure acme first request x20: median %.0f ms p90 %.0f ms max %.0f ms; cached median %.1f ms"
              % (med, p90, mx, stats(cached)[0]))

        burst = ["c%d.acme-shop.com" % i for i in range(50)]
        add_verified(h, burst, "shop")
        t0 = time.monotonic()
        res = handshakes(h.tls_port, burst, root, timeout=60)
        wall = time.monotonic() - t0
        ok = [x for x in res if x["ok"]]
        print("figure acme 50 new names at once: %d/50 served in %.2f s (slowest %.0f ms)"
              % (len(ok), wall, max(x["ms"] for x in res)))
        if len(ok) != 50:  # which side stalled: Pebble's request log beside the daemon's (debug) steps
            print("--- pebble, last 40 lines ---\n" + "\n".join(p.log_text().splitlines()[-40:]))
        expect(len(ok) == 50, "burst failures: %s" % [x["error"] for x in res if not x["ok"]][:3])

        # Restart: nothing is ordered again, the same certificates serve.
        before = handshake(h.tls_port, warm, root)
        h.restart()
        after = handshake(h.tls_port, warm, root)
        expect(after["ok"] and after["serial"] == before["serial"], "restart changed the certificate")
        expect(metric(h, *STARTED) == 0, "an order after restart")
    finally:
        shutdown(h, p)


def validating(challenge):
    dns = DnsServer().start()
    try:
        names = ["www", "shop", "api"]
        dns.set_zone("validated-shop.com", ["%s 60 A 127.0.0.1" % n for n in names] + ["@ 60 A 127.0.0.1"])
        h, p = daemon(lambda h: Pebble(http_port=h.http_port, tls_port=h.tls_port, dns_server=dns.addr),
                      challenges=challenge)
        try:
            root = pebble_root(p)
            host = "www.validated-shop.com"
            add_verified(h, [host], "shop")
            r = handshake(h.tls_port, host, root)
            expect(r["ok"], "%s: %s\n--- pebble ---\n%s" % (challenge, r["error"], p.log_text()[-3000:]))
            print("figure acme %s validated by Pebble against the edge: %.0f ms" % (challenge, r["ms"]))
            log = p.log_text()
            # Pebble logs its http-01 fetches but not its tls-alpn-01 handshakes.
            http_tried = "validate w/ HTTP" in log
            expect("Starting 3 validations" in log and "set VALID by completed challenge" in log and
                   http_tried == (challenge == "http-01"),
                   "pebble did not validate %s against the edge:\n%s" % (challenge, log[-2000:]))
            expect(h.sql("SELECT state, cert_status FROM domains WHERE hostname = ?", (host,)) == [("live", "issued")],
                   "domain row")
        finally:
            shutdown(h, p)
    finally:
        dns.stop()


@test
def http01_validated_against_edge():
    validating("http-01")


@test
def tlsalpn01_validated_against_edge():
    validating("tls-alpn-01")


@test
def hourly_cap_survives_restart():
    """[acme] max_orders_per_hour counts the orders of the last hour across a
    restart (they are stored), so a crash loop cannot reset it."""
    h, p = daemon(lambda h: Pebble(always_valid=True, http_port=h.http_port, tls_port=h.tls_port),
                  extra={"acme": {"backoff_base": "1s", "backoff_max": "4s", "max_orders_per_hour": "2"}})
    try:
        root = pebble_root(p)
        names = ["cap%d.acme-shop.com" % i for i in range(3)]
        add_verified(h, names, "shop")
        for n in names[:2]:
            r = handshake(h.tls_port, n, root)
            expect(r["ok"], "%s: %s" % (n, r["error"]))
        h.restart()  # SIGTERM; the order starts are in the store by then
        expect(h.sql("SELECT COUNT(*) FROM acme_orders")[0][0] == 2, "order starts not stored")
        r = handshake(h.tls_port, names[2], root, timeout=30)
        expect(not r["ok"], "a third order within the hour after a restart")
        expect("issuer.hourly_limit" in h.stderr_text(), "refused for another reason")
        expect(metric(h, *STARTED) == 0, "an order started")
    finally:
        shutdown(h, p)


@test
def ca_down_backoff_then_recovery():
    h, p = daemon(lambda h: Pebble(always_valid=True, http_port=h.http_port, tls_port=h.tls_port))
    p2 = None
    try:
        host = "down.acme-shop.com"
        add_verified(h, [host], "shop")
        p.stop()
        r = handshake(h.tls_port, host, None, timeout=30)
        expect(not r["ok"], "served without a CA?")
        print("figure acme CA down: handshake failed after %.0f ms (%s)" % (r["ms"], r["error"]))
        rows = h.sql("SELECT failures, next_attempt_at, last_error FROM issuance WHERE hostname = ?", (host,))
        expect(rows and rows[0][0] == 1, "no backoff row: %r" % rows)
        expect(h.sql("SELECT state, cert_status FROM domains WHERE hostname = ?", (host,)) == [("failed", "failed")],
               "domain row")
        expect(events(h, host, "domain.failed") == 0, "a transient failure is not domain.failed")
        # While backing off: refused at once, no order.
        before = metric(h, *STARTED)
        time.sleep(0.3)  # past the edge's negative cache
        r = handshake(h.tls_port, host, None, timeout=30)
        expect(not r["ok"] and metric(h, *STARTED) == before, "ordered while backing off")
        # The CA is back (a new Pebble, at a new URL): after the backoff, it works.
        p2 = Pebble(always_valid=True, http_port=h.http_port, tls_port=h.tls_port).start()
        with open(h.conf_path, "a") as f:
            f.write("[acme]\ndirectory = %s\nca_bundle = %s\n" % (p2.directory_url, p2.ca_file))
        h.proc.send_signal(signal.SIGHUP)
        wait = rows[0][1] / 1000.0 - time.time()
        time.sleep(max(0.0, wait) + 0.3)
        r = handshake(h.tls_port, host, pebble_root(p2))
        expect(r["ok"], "after recovery: %s" % r["error"])
        expect(h.sql("SELECT COUNT(*) FROM issuance WHERE hostname = ?", (host,))[0][0] == 0, "backoff not cleared")
    finally:
        shutdown(h, p)
        if p2:
            p2.stop()


@test
def renewal_with_short_lived_certificates():
    h, p = daemon(lambda h: Pebble(validity=30, always_valid=True, http_port=h.http_port, tls_port=h.tls_port))
    try:
        root = pebble_root(p)
        host = "short.acme-shop.com"
        add_verified(h, [host], "shop")
        a = handshake(h.tls_port, host, root)
        expect(a["ok"], a["error"])
        nb, na, ra = h.sql("SELECT not_before, not_after, renew_at FROM certificates WHERE hostname = ?", (host,))[0]
        life = (na - nb) / 1000.0
        expect(life < 120, "Pebble ignored certificateValidityPeriod (lifetime %.0f s)" % life)
        deadline = time.time() + life + 10
        while time.time() < deadline and metric(h, *RENEWED) < 1:
            time.sleep(0.2)
        expect(metric(h, *RENEWED) >= 1, "not renewed within the lifetime (%.0f s, renew_at in %.1f s)"
               % (life, (ra - nb) / 1000.0))
        b = handshake(h.tls_port, host, root)
        expect(b["ok"] and b["serial"] != a["serial"], "still the old certificate")
        print("figure acme renewal: lifetime %.0f s, renewed %.1f s after notBefore" % (life, (ra - nb) / 1000.0))
        expect(events(h, host, "domain.monitor_updated") >= 1, "monitor_updated")
    finally:
        shutdown(h, p)


if __name__ == "__main__":
    run()
