"""End-to-end: certificates from the built-in CA (the offline default) through
the real daemon and its edge. Domains are put in the store as verified with
no certificate, so the first TLS handshake is what asks for one (the edge
parks it, sends MSG_CERT_WANTED, the issuer signs, MSG_CERT_READY resumes
it). Prints latency figures ("figure ...")."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heetest import Hee, expect, run, test  # noqa: E402
from issuer_lib import (add_verified, ca_export, handshake, handshakes, metric, s_client_verify,  # noqa: E402
                        sql_write, stats)

STARTED = ("hee_issuance_total", '{result="started"}')
OK = ("hee_issuance_total", '{result="ok"}')

H = None
CA = None


def hee():
    global H, CA
    if H is None:
        H = Hee(conf={"edge": {"handshake_wait": "10s"}})
        H.new_project("shop", settings={"verification": "registration"})
        CA = ca_export(H)
    return H


def events(h, host, etype):
    return h.sql("SELECT COUNT(*) FROM events e JOIN domains d ON d.id = e.domain_id"
                  " WHERE d.hostname = ? AND e.type = ?", (host, etype))[0][0]


@test
def first_handshake_issues_and_chain_verifies():
    h = hee()
    host = "www.first-shop.com"
    add_verified(h, [host], "shop")
    before = metric(h, *STARTED)
    r = handshake(h.tls_port, host, CA)
    expect(r["ok"], "first handshake failed: %s" % r["error"])
    print("figure internal first handshake to a never-seen name: %.1f ms" % r["ms"])
    expect(metric(h, *STARTED) - before == 1, "expected one order")
    ok, text = s_client_verify(h.tls_port, host, CA)
    expect(ok, "openssl s_client -verifyCAfile <(hee ca export) failed:\n" + text)
    rows = h.sql("SELECT issuer, key_type, key_sealed, superseded_at FROM certificates WHERE hostname = ?", (host,))
    expect(rows == [("internal", "ecdsa-p256", 0, None)], "certificate row: %r" % rows)
    expect(h.sql("SELECT state, cert_status, cert_error FROM domains WHERE hostname = ?", (host,)) ==
           [("live", "issued", None)], "domain row")
    expect(events(h, host, "ssl.issued") == 1 and events(h, host, "domain.flow.completed") == 1, "events")
    d = h.admin().get("/v1/edge/domains/" + host).json()["domain"]
    expect(d["certificate"]["status"] == "issued" and d["certificate"]["issuer"].startswith("Hee Local CA"),
           "API view: %r" % d["certificate"])


@test
def registration_trust_issues_on_first_handshake_not_before():
    h = hee()
    p = h.new_token("shop", ["connections:read", "connections:write"])
    host = "api.trusting-shop.com"
    r = p.post("/v1/edge/domains", {"hostname": host})
    expect(r.status == 201, "register: %r" % r)
    deadline = time.time() + 10
    while time.time() < deadline and not p.get("/v1/edge/domains/" + host).json()["domain"]["verified"]:
        time.sleep(0.05)
    expect(p.get("/v1/edge/domains/" + host).json()["domain"]["verified"], "trusted registration verifies")
    time.sleep(0.5)
    expect(h.sql("SELECT COUNT(*) FROM certificates WHERE hostname = ?", (host,))[0][0] == 0,
           "issued before any handshake: certificates are on demand")
    r = handshake(h.tls_port, host, CA)
    expect(r["ok"], r["error"])
    expect(h.sql("SELECT COUNT(*) FROM certificates WHERE hostname = ?", (host,))[0][0] == 1, "one certificate")
    print("figure internal first handshake after trusted registration: %.1f ms" % r["ms"])


@test
def fifty_handshakes_one_name_one_order():
    h = hee()
    host = "crowd.one-name.com"
    add_verified(h, [host], "shop")
    before = metric(h, *STARTED)
    res = handshakes(h.tls_port, [host] * 50, CA)
    bad = [r["error"] for r in res if not r["ok"]]
    expect(not bad, "%d of 50 failed: %s" % (len(bad), bad[:3]))
    expect(metric(h, *STARTED) - before == 1, "orders: %s" % (metric(h, *STARTED) - before))
    expect(h.sql("SELECT COUNT(*) FROM issuance_log WHERE hostname = ?", (host,))[0][0] == 1, "issuance_log")
    expect(len({r["serial"] for r in res}) == 1, "more than one certificate served")


@test
def twenty_never_seen_names_latency():
    h = hee()
    names = ["seq%d.latency-shop.com" % i for i in range(20)]
    add_verified(h, names, "shop")
    ms = []
    for n in names:
        r = handshake(h.tls_port, n, CA)
        expect(r["ok"], "%s: %s" % (n, r["error"]))
        ms.append(r["ms"])
    cached = [handshake(h.tls_port, n, CA)["ms"] for n in names]
    med, p90, mx = stats(ms)
    print("figure internal first request x20: median %.1f ms p90 %.1f ms max %.1f ms; cached median %.1f ms"
          % (med, p90, mx, stats(cached)[0]))


@test
def fifty_new_names_at_once():
    h = hee()
    names = ["burst%d.many-shops.com" % i for i in range(50)]
    add_verified(h, names, "shop")
    t0 = time.monotonic()
    res = handshakes(h.tls_port, names, CA)
    wall = time.monotonic() - t0
    ok = [r for r in res if r["ok"]]
    print("figure internal 50 new names at once: %d/50 served in %.2f s (slowest %.0f ms)"
          % (len(ok), wall, max(r["ms"] for r in res)))
    expect(len(ok) == 50, "failures: %s" % [r["error"] for r in res if not r["ok"]][:3])
    # Functional bound only (every parked handshake resumed within
    # handshake_wait); the 3 s aim is measured by bench/run, not asserted.
    expect(wall < 10.0, "took %.2f s" % wall)


@test
def renewal_replaces_served_certificate():
    h = hee()
    host = "renew.first-shop.com"
    add_verified(h, [host], "shop")
    a = handshake(h.tls_port, host, CA)
    expect(a["ok"], a["error"])
    before = metric(h, "hee_renewals_total", '{result="ok"}')
    # Make it due now; SIGHUP makes the issuer look at once (else within a minute).
    sql_write(h, "UPDATE certificates SET renew_at = 0 WHERE hostname = ? AND superseded_at IS NULL", (host,))
    h.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 15
    while time.time() < deadline and metric(h, "hee_renewals_total", '{result="ok"}') == before:
        time.sleep(0.1)
    expect(metric(h, "hee_renewals_total", '{result="ok"}') == before + 1, "no renewal")
    b = handshake(h.tls_port, host, CA)
    expect(b["ok"] and b["serial"] != a["serial"], "still serving the old certificate: %r %r" % (a, b))
    rows = h.sql("SELECT COUNT(*), SUM(superseded_at IS NULL) FROM certificates WHERE hostname = ?", (host,))
    expect(rows == [(2, 1)], "rows: %r" % rows)
    expect(events(h, host, "domain.monitor_updated") == 1, "monitor_updated")
    expect(events(h, host, "domain.flow.completed") == 1, "flow.completed only once")


@test
def restart_keeps_certificates_and_ca():
    global CA
    h = hee()
    host = "www.first-shop.com"
    a = handshake(h.tls_port, host, CA)
    n_certs = h.sql("SELECT COUNT(*) FROM certificates")[0][0]
    root = open(CA).read()
    h.restart()
    expect(h.cli("ca", "export").stdout == root, "the local CA changed across a restart")
    b = handshake(h.tls_port, host, CA)
    expect(b["ok"] and b["serial"] == a["serial"], "different certificate after restart: %r %r" % (a, b))
    expect(metric(h, *STARTED) == 0, "an order after restart")
    expect(h.sql("SELECT COUNT(*) FROM certificates")[0][0] == n_certs, "rows changed")


@test
def sealed_keys_at_rest():
    kek = os.path.join(hee().dir, "kek")  # any private dir will do
    with open(os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(os.urandom(32))
    h = Hee(conf={"store": {"key_encryption_key": kek}})
    try:
        h.new_project("vault", settings={"verification": "registration"})
        host = "sealed.vault-shop.com"
        add_verified(h, [host], "vault")
        ca = ca_export(h)
        r = handshake(h.tls_port, host, ca)
        rows = h.sql("SELECT key_sealed, substr(key_pem, 1, 5) FROM certificates WHERE hostname = ?", (host,))
        expect(rows and rows[0][0] == 1 and rows[0][1] in ("HEEK1", b"HEEK1"), "not sealed: %r" % rows)
        ca_key = h.sql("SELECT substr(key_pem, 1, 5) FROM local_ca")[0][0]
        expect(ca_key in ("HEEK1", b"HEEK1"), "local CA key not sealed")
        expect(r["ok"], "the edge did not serve the sealed key: %s" % r["error"])
        print("sealed: the edge served the sealed key")
    finally:
        h.stop()
        h.cleanup()


@test
def rsa_keys_come_from_the_key_pool():
    """RSA-2048 keys take 50-500 ms each: they are made on the key pool's
    thread, so more names than its stock at once all get served while the
    control loop keeps answering."""
    h = Hee(conf={"edge": {"key_type": "rsa-2048", "handshake_wait": "30s"}})
    try:
        h.new_project("rsa", settings={"verification": "registration"})
        ca = ca_export(h)
        names = ["rsa%d.rsa-shop.com" % i for i in range(6)]  # more than the pool's stock of 4
        add_verified(h, names, "rsa")
        rs = handshakes(h.tls_port, names, ca)
        expect(all(r["ok"] for r in rs), "RSA handshakes: %r" % [r["error"] for r in rs if not r["ok"]])
        rows = h.sql("SELECT DISTINCT key_type FROM certificates WHERE hostname LIKE '%.rsa-shop.com'")
        expect(rows == [("rsa-2048",)], "key types: %r" % rows)
        ok, text = s_client_verify(h.tls_port, names[0], ca)
        expect(ok and "RSA" in text, "s_client on an RSA certificate:\n" + text)
        print("figure internal 6 RSA names at once: slowest %.0f ms" % max(r["ms"] for r in rs))
    finally:
        h.stop()
        h.cleanup()


def teardown():
    if H is not None:
        H.stop()
        H.cleanup()
    if CA and os.path.exists(CA):
        os.unlink(CA)


if __name__ == "__main__":
    run(teardown=teardown)
