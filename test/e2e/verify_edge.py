"""Edge-triggered verification end to end: the first TLS handshake for a
registered but unverified hostname parks at the edge (MSG_PROBE_WANTED), the
control thread probes at once (verify_hint) and, verified, asks the issuer,
whose certificate completes the handshake; unverified, the handshake fails
fast (MSG_CERT_FAILED) instead of waiting out handshake_wait, and a burst of
handshakes costs one probe per first_request_probe."""
import os
import shutil
import socket
import ssl
import sys
import time

if not shutil.which("knotd"):
    print("knotd not installed: skipped")
    sys.exit(77)

from heetest import Hee, expect, run, test  # noqa: E402
from verify_dns import VerifyDns, hee_verify_conf  # noqa: E402

DNS = VerifyDns().start()
# first_request_probe leaves unverified_fails_fast's burst of handshakes
# (after the 1 s negative_ttl) ample time on a loaded machine.
FIRST_REQUEST_PROBE = 4  # seconds
CONF = hee_verify_conf(DNS.addr, pending_interval="1h", first_request_probe="%ds" % FIRST_REQUEST_PROBE)
CONF["edge"].update({"handshake_wait": "10s", "negative_ttl": "1s"})
H = Hee(conf=CONF)
ACME = H.new_project("acme")
DNS.knot.set_zone("other.test", ["shop A 198.51.100.7"])
DNS.knot.set_zone("edge.test", ["unrelated A 198.51.100.1"])


def register(host):
    r = ACME.post("/v1/edge/domains", {"hostname": host})
    expect(r.status == 201, r)


def checks(host):
    return H.sql("SELECT count(*) FROM checks c JOIN domains d ON d.id = c.domain_id WHERE d.hostname = ?",
                 (host,))[0][0]


def handshake(host, cadata=None, timeout=15):
    ctx = ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    if not cadata:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", H.tls_port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(s, server_hostname=host)
        tls.close()
        return "ok", time.time() - t0
    except ssl.SSLError as e:
        s.close()
        return "alert:%s" % getattr(e, "reason", e), time.time() - t0
    except OSError as e:
        s.close()
        return "error:%s" % e, time.time() - t0


def ca_pem():
    p = H.cli("ca", "export", check=False)
    return p.stdout if p.returncode == 0 and "BEGIN CERTIFICATE" in p.stdout else None


@test
def first_request_verifies_and_issues():
    register("first.edge.test")  # no DNS yet: the registration probe and the first tick find nothing
    time.sleep(FIRST_REQUEST_PROBE + 0.2)  # past first_request_probe since the registration probe
    expect(checks("first.edge.test") >= 1, "probed at registration")
    expect(ACME.get("/v1/edge/domains/first.edge.test").json()["domain"]["verified"] is False)
    DNS.knot.set_zone("edge.test", ["unrelated A 198.51.100.1", "first CNAME edge.hee.la."])
    n0 = checks("first.edge.test")
    verdict, took = handshake("first.edge.test", cadata=ca_pem())
    print("  first handshake: %s after %.2fs (probe + local CA issuance)" % (verdict, took))
    expect(verdict == "ok", verdict)
    expect(took < 8, took)
    d = ACME.get("/v1/edge/domains/first.edge.test").json()["domain"]
    expect(d["verified"] is True and d["state"] in ("issuing_cert", "live"), d)
    expect(checks("first.edge.test") == n0 + 1, "one probe for the handshake")
    log = H.stderr_text()
    expect("msg=tls.probe_wanted host=first.edge.test" in log and "msg=verify.hint host=first.edge.test" in log,
           log[-3000:])
    # the next handshake is served from the certificate at once
    verdict, took = handshake("first.edge.test", cadata=ca_pem())
    expect(verdict == "ok" and took < 1, (verdict, took))


@test
def unverified_fails_fast():
    DNS.knot.set_zone("edge.test", ["unrelated A 198.51.100.1", "first CNAME edge.hee.la.",
                                    "wrong CNAME shop.other.test."])
    register("wrong.edge.test")
    time.sleep(FIRST_REQUEST_PROBE + 0.2)
    n0 = checks("wrong.edge.test")
    verdict, took = handshake("wrong.edge.test")
    expect(verdict.startswith("alert"), verdict)
    expect(took < 2, "failed fast, not after handshake_wait (10s): %.2fs" % took)
    expect(checks("wrong.edge.test") == n0 + 1, "probed once")
    # a burst within first_request_probe: no second probe, still fast
    time.sleep(1.1)  # past the edge's negative_ttl, so control is asked again
    for _ in range(5):
        verdict, took = handshake("wrong.edge.test")
        expect(verdict.startswith("alert") and took < 2, (verdict, took))
    expect(checks("wrong.edge.test") == n0 + 1, "rate-limited: %d checks" % (checks("wrong.edge.test") - n0))
    d = ACME.get("/v1/edge/domains/wrong.edge.test").json()["domain"]
    expect(d["verified"] is False and d["state"] == "pending_ownership", d)


def teardown():
    if os.environ.get("VERIFY_SHOW_LOG"):
        print("\n".join(line for line in H.stderr_text().splitlines()
                        if "verify." in line or "tls." in line or "issu" in line or "error" in line))
    try:
        H.stop()
    finally:
        DNS.stop()


if __name__ == "__main__":
    run(teardown=teardown)
