#!/usr/bin/env python3
"""hooks_expiry: domain.expired from a real flow, at a real receiver.

Pebble (always-valid) issues a certificate that lives a few seconds
(certificateValidityPeriod); the domain goes live through a real handshake.
Pebble is then stopped, so the renewal really fails (connection refused, the
issuer backs off and retries) and the certificate runs out. The receiver
(test/lib/receiver.py, which checks both signature schemes with its own
code) must get a signed domain.expired carrying the domain object, with a
sequence after every earlier event of that domain, and nothing out of order.
Skipped (77) when pebble is not installed."""

import os
import shutil
import sys
import time

if not shutil.which("pebble"):
    print("pebble not installed: skipped")
    sys.exit(77)

from hooks_common import Hee, Receiver, add_domain, check_domain_order, create_endpoint, expect, hook_conf
from heetest import run, test
from issuer_lib import handshake, metric
from pebble import Pebble

LIFETIME_S = 8


def of(deliveries, host, etype):
    return [d for d in deliveries if d.status == 200 and d.event_type == etype
            and d.json["data"]["domain"]["hostname"] == host]


@test
def certificate_runs_out_while_the_ca_is_down():
    conf = hook_conf()
    conf["edge"] = {"handshake_wait": "20s", "negative_ttl": "200ms"}
    conf["acme"] = {"backoff_base": "1s", "backoff_max": "2s"}
    h = Hee(conf, start=False)
    p = Pebble(validity=LIFETIME_S, always_valid=True, http_port=h.http_port, tls_port=h.tls_port)
    try:
        p.start()
        root = os.path.join(p.workdir, "root.pem")
        with open(root, "w") as f:
            f.write(p.root_pem())
        with open(h.conf_path, "a") as f:
            f.write("[acme]\ndirectory = %s\nca_bundle = %s\nchallenges = tls-alpn-01 http-01\n"
                    % (p.directory_url, p.ca_file))
        h.start()
        client = h.new_project("shop", settings={"verification": "registration"})
        with Receiver([]) as r:
            ep = create_endpoint(client, r.url)
            r.set_secrets([ep["secret"]])
            host = "expiring.shop.test"
            add_domain(client, host)
            hs = handshake(h.tls_port, host, root)
            expect(hs["ok"], "first handshake: %r" % hs)
            issued = r.wait_for(lambda ev: of(ev, host, "ssl.issued"), timeout=20)[0]
            nb, na = h.sql("SELECT not_before, not_after FROM certificates WHERE hostname = ?", (host,))[0]
            life = (na - nb) / 1000.0
            expect(life < 60, "Pebble ignored certificateValidityPeriod (lifetime %.0f s)" % life)
            # The CA goes away: renewal fails for real and the certificate runs out.
            p.stop()
            left = na / 1000.0 - time.time()
            expired = r.wait_for(lambda ev: of(ev, host, "domain.expired"), timeout=max(0.0, left) + 20)[0]
            late = expired.arrived - na / 1000.0
            print("figure hooks domain.expired at the receiver %.1f s after notAfter (lifetime %.0f s)"
                  % (late, life))
            expect(expired.verified and expired.hee_naive_ok, "domain.expired not correctly signed: %r" % expired)
            expect(expired.msg_id == expired.json["id"], "webhook-id is the event id")
            data = expired.json["data"]
            dom = data["domain"]
            expect(dom["hostname"] == host and dom["projectSlug"] == "shop" and dom["verified"], repr(dom))
            expect(dom["certificate"]["status"] == "failed" and dom["removedAt"] is None, repr(dom))
            expect(data["reason"] == "certificate expired without renewal", repr(data))
            expect(metric(h, "hee_renewals_total", '{result="failed"}') >= 1 and
                   metric(h, "hee_renewals_total", '{result="ok"}') == 0, "the renewal did not really fail")
            expect(expired.arrived >= na / 1000.0 - 1.0, "expired before notAfter: %r" % data)
            # In sequence after the domain's earlier events, and nothing overtook.
            got = r.events()
            mine = [d for d in got if d.status == 200 and d.json["data"]["domain"]["hostname"] == host]
            seqs = [d.json["sequence"] for d in mine]
            first = {t: of(got, host, t)[0].json["sequence"] for t in
                     ("domain.created", "domain.verified", "ssl.issued", "domain.flow.completed")}
            expect(first["domain.created"] == 1 and issued.json["sequence"] == first["ssl.issued"], repr(first))
            expect(all(s < expired.json["sequence"] for s in first.values()),
                   "domain.expired (%d) not after %r" % (expired.json["sequence"], first))
            expect(seqs[: seqs.index(expired.json["sequence"]) + 1] == list(range(1, expired.json["sequence"] + 1)),
                   "gaps or disorder before domain.expired: %r" % seqs)
            expect(all(d.verified for d in got), "every delivery signed")
            check_domain_order(got)
            print("events for %s: %s" % (host, ", ".join("%d %s" % (d.json["sequence"], d.event_type) for d in mine)))
            rows = h.sql("SELECT COUNT(*) FROM events e JOIN domains d ON d.id = e.domain_id"
                         " WHERE d.hostname = ? AND e.type = 'domain.expired'", (host,))[0][0]
            expect(rows == 1, "domain.expired events stored: %d" % rows)
    finally:
        try:
            h.stop()
            h.cleanup()
        finally:
            p.stop()


if __name__ == "__main__":
    run()
