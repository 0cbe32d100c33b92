#!/usr/bin/env python3
"""hooks_lifecycle: every event type a real flow can produce in a test, as
webhooks — registration, DNS verification (knot behind verify_dns's proxy),
the built-in CA's certificate, drift and recovery, the end of the
verification window, deletion — delivered signed and in per-domain order.
(domain.expired, from a certificate that really runs out while its renewal
fails, is hooks_expiry.py.)"""

import shutil
import sys
import time

if not shutil.which("knotd"):
    print("knotd not installed: skipped")
    sys.exit(77)

from hooks_common import Hee, Receiver, add_domain, check_domain_order, create_endpoint, del_domain, expect, hook_conf
from heetest import run, test
from issuer_lib import handshake
from verify_dns import VerifyDns, hee_verify_conf

DNS = None
H = None
P = None


def of(deliveries, host, etype):
    return [d for d in deliveries if d.status == 200 and d.event_type == etype
            and d.json["data"]["domain"]["hostname"] == host]


def wait_type(r, host, etype, timeout=20):
    return r.wait_for(lambda ev: of(ev, host, etype), timeout=timeout)[0]


@test
def every_lifecycle_event_arrives_in_order():
    DNS.knot.set_zone("flow.test", ["www CNAME edge.hee.la."])
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url)
        r.set_secrets([ep["secret"]])
        host = "www.flow.test"
        add_domain(P, host)
        created = wait_type(r, host, "domain.created")
        verified = wait_type(r, host, "domain.verified")
        expect(verified.json["data"]["method"] == "cname" and verified.json["data"]["domain"]["verified"], repr(
            verified.json))
        # Certificates are issued on demand: the first handshake asks for one.
        hs = handshake(H.tls_port, host)
        expect(hs["ok"], "first handshake: %r" % hs)
        issued = wait_type(r, host, "ssl.issued")
        expect(issued.json["data"]["certificate"]["notAfter"], repr(issued.json["data"]))
        done = wait_type(r, host, "domain.flow.completed")
        expect(done.json["data"]["domain"]["state"] == "live", repr(done.json["data"]["domain"]))
        # DNS moves away: drift; and back: monitor_updated.
        DNS.knot.set_zone("flow.test", ["www CNAME shop.other.test."])
        drift = wait_type(r, host, "domain.drift")
        expect(drift.json["data"]["reason"] == "dns_changed" and drift.json["data"]["domain"]["verified"], repr(
            drift.json["data"]))
        DNS.knot.set_zone("flow.test", ["www CNAME edge.hee.la."])
        mon = wait_type(r, host, "domain.monitor_updated")
        expect(mon.json["data"]["reason"] == "dns_restored", repr(mon.json["data"]))
        del_domain(P, host)
        deleted = wait_type(r, host, "domain.deleted")
        seqs = [d.json["sequence"] for d in (created, verified, issued, done, drift, mon, deleted)]
        expect(seqs == sorted(seqs) and seqs[0] == 1, "sequence order: %r" % seqs)
        # A domain whose DNS never points at the edge fails when the window ends.
        add_domain(P, "never.flow.test")
        failed = wait_type(r, "never.flow.test", "domain.failed", timeout=30)
        expect(failed.json["data"]["reason"] == "verification_window_ended", repr(failed.json["data"]))
        got = r.events()
        expect(all(d.verified for d in got), "every delivery signed")
        check_domain_order(got)
        seen = {d.event_type for d in got if d.status == 200}
        expect(seen >= {"domain.created", "domain.verified", "ssl.issued", "domain.flow.completed", "domain.drift",
                        "domain.monitor_updated", "domain.deleted", "domain.failed"}, "types: %r" % seen)
        P.delete("/v1/webhook-endpoints/" + ep["id"])


def main():
    global DNS, H, P
    DNS = VerifyDns().start()
    DNS.knot.set_zone("other.test", ["shop A 198.51.100.7"])
    conf = hook_conf()
    conf.update(hee_verify_conf(DNS.addr, pending_window="3s"))
    H = Hee(conf)
    P = H.new_project("acme")

    def teardown():
        try:
            H.stop()
            H.cleanup()
        finally:
            DNS.stop()

    run(teardown=teardown)


if __name__ == "__main__":
    main()
