"""Verification through the API, against knot (behind test/e2e/verify_dns.py's
proxy) while `hee` runs: every method (cname, apex A/AAAA, TXT — over TCP
after a truncated answer — and trusted registration), POST …/verify (instant,
409 ownership_not_found), POST …/diagnose with every hint, CAA through CNAME
aliases, GET …/checks, scopes and tenancy."""
import os
import shutil
import sys
import threading
import time

if not shutil.which("knotd"):
    print("knotd not installed: skipped")
    sys.exit(77)

from heetest import Hee, expect, expect_error, run, test
from verify_dns import VerifyDns, hee_verify_conf

DNS = VerifyDns().start()
H = Hee(conf=hee_verify_conf(DNS.addr))
ACME = H.new_project("acme")
TRUST = H.new_project("trusty", settings={"verification": "registration"})
OTHER = H.new_project("othercorp")

CUST = [
    '@ CAA 0 issue "letsencrypt.org"',
    "www CNAME edge.hee.la.",
    "apex A 192.0.2.10",
    "apex AAAA 2001:db8::10",
    'missing TXT "nothing here"',
    "wrong CNAME shop.other.test.",
    "wt A 198.51.100.7",
    "cf A 104.16.1.1",
    "partial A 192.0.2.10",
    "partial A 198.51.100.9",
    "blocked A 192.0.2.10",
    'blocked CAA 0 issue "digicert.com"',
    "stray A 192.0.2.10",
    "stray AAAA 2001:db8::99",
    "loop1 CNAME loop2",
    "loop2 CNAME loop1",
    "chain CNAME c2.other.test.",
    "caaalias CNAME hop.other.test.",
    "nocaa CNAME plain.strict.test.",
    "w.lp A 192.0.2.10",
    "lp CNAME lp2",
    "lp2 CNAME lp",
]
# CAA through aliases (RFC 8659 3): every CAA lookup of the climb follows
# CNAMEs; a set at the chain's end is the hostname's, and without one the
# climb goes on at the hostname's parent, never at the target's.
DNS.knot.set_zone("other.test", ["shop A 198.51.100.7", "c2 CNAME c3", "c3 CNAME edge.hee.la.",
                                 "hop CNAME caa-target", "caa-target A 192.0.2.10",
                                 'caa-target CAA 0 issue "digicert.com"',
                                 "le-ok A 192.0.2.10", 'le-ok CAA 0 issue "letsencrypt.org"'])
DNS.knot.set_zone("strict.test", ['@ CAA 0 issue "digicert.com"', "viaok CNAME le-ok.other.test.",
                                  "edge CNAME edge.hee.la.", "plain A 192.0.2.10"])
DNS.knot.set_zone("cust.test", CUST)
for z in ("bogus.test", "sf.test", "slow.test"):
    DNS.knot.set_zone(z, ["www CNAME edge.hee.la."])
DNS.rule("bogus.test", "bogus")
DNS.rule("sf.test", "servfail")
DNS.rule("slow.test", "drop")


def register(client, host):
    r = client.post("/v1/edge/domains", {"hostname": host})
    expect(r.status == 201, r)
    return r.json()["domain"]


def domain(host, client=ACME):
    r = client.get("/v1/edge/domains/" + host)
    expect(r.status == 200, r)
    return r.json()["domain"]


# Once verified, the issuer may move a domain on at once (the registration
# hint asks it for a certificate): any of these means "verified".
VERIFIED = ("verified", "issuing_cert", "live")


def wait_state(host, want, timeout=8.0, client=ACME):
    wants = VERIFIED if want == "verified" else (want,)
    end = time.time() + timeout
    d = None
    while time.time() < end:
        d = domain(host, client)
        if d["state"] in wants:
            return d
        time.sleep(0.1)
    raise AssertionError("%s: state %s, expected %s" % (host, d and d["state"], want))


def row(host, cols):
    rows = H.sql("SELECT %s FROM domains WHERE hostname = ? AND removed_at IS NULL" % cols, (host,))
    expect(len(rows) == 1, rows)
    return rows[0]


def events(host, etype):
    return H.sql("SELECT e.payload FROM events e JOIN domains d ON d.id = e.domain_id "
                 "WHERE d.hostname = ? AND e.type = ?", (host, etype))


@test
def cname_verified_by_the_scheduler():
    register(ACME, "www.cust.test")
    d = wait_state("www.cust.test", "verified")
    expect(d["verified"] is True and d["verifiedAt"], d)
    expect(row("www.cust.test", "verify_method") == ("cname",))
    ev = events("www.cust.test", "domain.verified")
    expect(len(ev) == 1 and '"method":"cname"' in ev[0][0] and '"state":"verified"' in ev[0][0], ev)
    expect(d["state"] in VERIFIED, d)


@test
def apex_a_records_verified():
    register(ACME, "apex.cust.test")
    wait_state("apex.cust.test", "verified")
    expect(row("apex.cust.test", "verify_method") == ("a",))


@test
def txt_challenge_verified_over_tcp():
    d = register(ACME, "big.cust.test")
    value = d["ownershipChallenge"]["value"]
    expect(d["ownershipChallenge"]["name"] == "_customdomain-challenge.big.cust.test", d)
    # The TXT RRset is well over 512 bytes: knot truncates the UDP answer
    # and the resolver must ask again over TCP.
    big = ['_customdomain-challenge.big TXT "%02d-%s"' % (i, "0123456789abcdefghijklmnopqrstuvwxyz-" * 2)
           for i in range(10)]
    tcp_before = DNS.stats["tcp"]
    DNS.knot.set_zone("cust.test", CUST + big + ['_customdomain-challenge.big TXT "%s"' % value,
                                                 "big A 198.51.100.44"])
    wait_state("big.cust.test", "verified")
    expect(row("big.cust.test", "verify_method") == ("txt",))
    expect(DNS.stats["tcp"] > tcp_before, DNS.stats)


@test
def registration_trusted_without_dns():
    register(TRUST, "nowhere.trust.test")
    d = wait_state("nowhere.trust.test", "verified", client=TRUST)
    expect(d["verified"] is True, d)
    expect(row("nowhere.trust.test", "verify_method") == ("registration",))
    ev = events("nowhere.trust.test", "domain.verified")
    expect(len(ev) == 1 and '"method":"registration"' in ev[0][0], ev)
    # /verify answers without DNS too
    r = TRUST.post("/v1/edge/domains/nowhere.trust.test/verify")
    expect(r.status == 200 and r.json()["probe"]["method"] == "registration", r)
    # diagnose still looks at DNS, and says what the project accepts
    r = TRUST.post("/v1/edge/domains/nowhere.trust.test/diagnose")
    expect(r.status == 200 and r.json()["acceptedMethods"] == "registration", r)


@test
def verify_now():
    register(ACME, "now.cust.test")
    r = ACME.post("/v1/edge/domains/now.cust.test/verify")
    expect_error(r, 409, "ownership_not_found")
    msg = r.json()["error"]["message"]
    expect("nxdomain" in msg and "now.cust.test" in msg, msg)
    n_before = H.sql("SELECT count(*) FROM checks c JOIN domains d ON d.id = c.domain_id "
                     "WHERE d.hostname = 'now.cust.test'")[0][0]
    DNS.knot.set_zone("cust.test", CUST + ["now CNAME edge.hee.la."])
    resolve = "/v1/edge/resolve?hostname=now.cust.test"
    expect(ACME.get(resolve).json()["verified"] is False)  # resolve's read pin is taken now
    t0 = time.time()
    r = ACME.post("/v1/edge/domains/now.cust.test/verify", {})
    took = time.time() - t0
    # The probe committed on the background thread; resolve sees it at once.
    seen = ACME.get(resolve).json()
    expect(seen["verified"] is True, seen)
    expect(r.status == 200, r)
    body = r.json()
    expect(body["domain"]["hostname"] == "now.cust.test" and body["domain"]["verified"] is True, body)
    expect(body["domain"]["state"] in VERIFIED, body)
    expect(body["probe"]["verified"] is True and body["probe"]["method"] == "cname", body)
    expect(body["probe"]["verdict"] == "verified" and body["probe"]["hint"] == "ok", body)
    expect(isinstance(body["domain"]["metadata"], dict), body)
    n_after = H.sql("SELECT count(*) FROM checks c JOIN domains d ON d.id = c.domain_id "
                    "WHERE d.hostname = 'now.cust.test'")[0][0]
    expect(n_after > n_before, (n_before, n_after))
    expect(took < 2.0, took)
    # already verified: 200 again, the flag never drops
    expect(ACME.post("/v1/edge/domains/now.cust.test/verify").status == 200)
    expect_error(ACME.post("/v1/edge/domains/now.cust.test/verify", {"force": True}), 400, "invalid")


HINTS = [
    ("www.cust.test", "ok"),
    ("missing.cust.test", "missing"),
    ("nx.cust.test", "nxdomain"),
    ("wrong.cust.test", "wrong_target"),
    ("wt.cust.test", "wrong_type"),
    ("cf.cust.test", "cloudflare_proxy"),
    ("partial.cust.test", "partial"),
    ("blocked.cust.test", "caa_blocks_issuer"),
    ("stray.cust.test", "stray_aaaa"),
    ("www.bogus.test", "dnssec_bogus"),
    ("loop1.cust.test", "cname_loop"),
    ("www.sf.test", "servfail"),
    ("www.slow.test", "timeout"),
]


@test
def diagnose_every_hint():
    for host, _ in HINTS:
        if ACME.get("/v1/edge/domains/" + host).status == 404:
            register(ACME, host)
    for host, hint in HINTS:
        r = ACME.post("/v1/edge/domains/%s/diagnose" % host)
        expect(r.status == 200, (host, r))
        b = r.json()
        expect(b["hostname"] == host and b["checkedAt"].endswith("Z"), b)
        expect(b["hint"] == hint, "%s: hint %s, expected %s: %s" % (host, b["hint"], hint, b))
        expect(b["acceptedMethods"] == ["cname", "a", "txt"], b)
        types = [rec["type"] for rec in b["records"]]
        expect(types[:3] == ["CNAME", "A", "AAAA"] and "TXT" in types, (host, types))
        for rec in b["records"]:
            expect(set(rec) == {"type", "name", "found", "expected", "hint", "status"}, rec)
        expect(b["verdict"] == ("verified" if hint == "ok" else
                                "inconclusive" if hint in ("servfail", "timeout") else "unverified"), b)
        expect(isinstance(b["outcome"], str) and b["outcome"], b)
    cname = [rec for rec in ACME.post("/v1/edge/domains/wrong.cust.test/diagnose").json()["records"]
             if rec["type"] == "CNAME"][0]
    expect(cname["found"] == ["shop.other.test"] and cname["expected"] == "edge.hee.la", cname)
    caa = [rec for rec in ACME.post("/v1/edge/domains/blocked.cust.test/diagnose").json()["records"]
           if rec["type"] == "CAA"][0]
    expect(caa["hint"] == "caa_blocks_issuer" and any("digicert.com" in f for f in caa["found"]), caa)
    # diagnose moves nothing (the scheduler keeps probing meanwhile, so look at states)
    for host, hint in HINTS:
        if hint != "ok":
            expect(not domain(host)["verified"], host)


@test
def cname_chain_across_zones():
    register(ACME, "chain.cust.test")
    wait_state("chain.cust.test", "verified")
    summary = H.sql("SELECT c.summary FROM checks c JOIN domains d ON d.id = c.domain_id "
                    "WHERE d.hostname = 'chain.cust.test' AND c.verified = 1 ORDER BY c.id DESC LIMIT 1")[0][0]
    expect("c2.other.test>c3.other.test>edge.hee.la" in summary, summary)


@test
def caa_follows_cname_aliases():
    # (host, hint, name the CAA row reports, issuer found there)
    cases = [
        # the chain's end has CAA: it is the hostname's, though cust.test allows
        ("caaalias.cust.test", "caa_blocks_issuer", "caa-target.other.test", "digicert.com"),
        # ... the same the other way round: strict.test forbids, the target allows
        ("viaok.strict.test", "ok", "le-ok.other.test", "letsencrypt.org"),
        # no CAA at the chain's end: the hostname's parent decides (cust.test
        # allows), not the target's (strict.test would not)
        ("nocaa.cust.test", "ok", "cust.test", "letsencrypt.org"),
        # the usual customer set-up, a CNAME to the edge: the customer's zone decides
        ("edge.strict.test", "caa_blocks_issuer", "strict.test", "digicert.com"),
        # the parent's CAA lookup meets a CNAME loop: an error, not "no CAA"
        ("w.lp.cust.test", "cname_loop", "lp.cust.test", None),
    ]
    for host, _, _, _ in cases:
        register(ACME, host)
    for host, hint, at, issuer in cases:
        r = ACME.post("/v1/edge/domains/%s/diagnose" % host)
        expect(r.status == 200, (host, r))
        b = r.json()
        expect(b["hint"] == hint, "%s: hint %s, expected %s: %s" % (host, b["hint"], hint, b))
        caa = [rec for rec in b["records"] if rec["type"] == "CAA"]
        expect(len(caa) == 1 and caa[0]["name"] == at and caa[0]["hint"] == hint, (host, caa))
        expect(caa[0]["status"] == "OK", (host, caa))
        expect(any(issuer in f for f in caa[0]["found"]) if issuer else caa[0]["found"] == [], (host, caa))
        if hint == "caa_blocks_issuer":
            expect(b["outcome"] == "CAA records at %s do not allow letsencrypt.org to issue" % at, b)
    wait_state("viaok.strict.test", "verified")
    wait_state("nocaa.cust.test", "verified")
    for host in ("caaalias.cust.test", "edge.strict.test", "w.lp.cust.test"):
        expect(domain(host)["state"] in ("pending_ownership", "verifying"), host)


@test
def checks_listing():
    r = ACME.get("/v1/edge/domains/www.cust.test/checks")
    expect(r.status == 200, r)
    b = r.json()
    expect(b["hostname"] == "www.cust.test" and len(b["checks"]) >= 1, b)
    c = b["checks"][0]
    expect(set(c) == {"at", "method", "outcome", "verified", "summary"}, c)
    expect(c["at"].endswith("Z") and c["outcome"] == "ok" and c["verified"] is True and c["method"] == "cname", c)
    ats = [x["at"] for x in b["checks"]]
    expect(ats == sorted(ats, reverse=True), ats)
    loop = ACME.get("/v1/edge/domains/loop1.cust.test/checks?limit=1").json()["checks"]
    expect(len(loop) == 1 and loop[0]["outcome"] == "cname_loop" and loop[0]["method"] == "all", loop)
    expect(loop[0]["verified"] is False, loop)
    expect_error(ACME.get("/v1/edge/domains/www.cust.test/checks?limit=0"), 400, "invalid")
    expect_error(ACME.get("/v1/edge/domains/www.cust.test/checks?limit=101"), 400, "invalid")
    expect_error(ACME.get("/v1/edge/domains/www.cust.test/checks?other=1"), 400, "invalid")


@test
def scopes_and_tenancy():
    ro = H.new_token("acme", ["connections:read"])
    expect_error(ro.post("/v1/edge/domains/www.cust.test/verify"), 403, "forbidden")
    expect(ro.post("/v1/edge/domains/www.cust.test/diagnose").status == 200)
    expect(ro.get("/v1/edge/domains/www.cust.test/checks").status == 200)
    wo = H.new_token("acme", ["connections:write"])
    expect(wo.post("/v1/edge/domains/www.cust.test/verify").status == 200)
    expect_error(wo.post("/v1/edge/domains/www.cust.test/diagnose"), 403, "forbidden")
    for path in ("verify", "diagnose"):
        expect_error(OTHER.post("/v1/edge/domains/www.cust.test/" + path), 404, "not_found")
    expect_error(OTHER.get("/v1/edge/domains/www.cust.test/checks"), 404, "not_found")
    expect_error(ACME.post("/v1/edge/domains/unknown.cust.test/verify"), 404, "not_found")
    expect_error(ACME.post("/v1/edge/domains/not..valid/diagnose"), 400, "invalid")
    expect_error(H.client().post("/v1/edge/domains/www.cust.test/verify"), 401, "unauthorized")
    # the operator sees every tenant's
    expect(H.admin().get("/v1/edge/domains/www.cust.test/checks").status == 200)
    expect_error(ACME.get("/v1/edge/domains/www.cust.test/verify"), 405)


@test
def metrics_count_probes():
    text = H.client().get("/metrics").text
    runs = [line for line in text.splitlines() if line.startswith('hee_probes_total{result="run"}')]
    expect(runs and int(float(runs[0].split()[-1])) > 0, runs)
    expect("hee_probe_seconds" in text, text[:2000])


@test
def probes_in_flight_at_shutdown():
    """Probes run on the background thread; the API waits for them on the
    control thread. A stop in between answers the waiting requests (503
    unavailable) and exits cleanly: no hang, no leak, no sanitizer report."""
    conf = hee_verify_conf(DNS.addr, dns_timeout="3s")
    conf["log"] = {"level": "debug"}  # the background thread logs each call it takes
    h = Hee(conf=conf)
    try:
        c = h.new_project("late")
        register(c, "www.slow.test")
        out = {}

        def call(kind):
            try:
                own = h.client(c.token)  # one connection per thread
                out[kind] = own.post("/v1/edge/domains/www.slow.test/" + kind, {})
            except Exception as e:  # noqa: BLE001 (reported below)
                out[kind + " error"] = repr(e)

        ts = [threading.Thread(target=call, args=(k,)) for k in ("verify", "diagnose")]
        for t in ts:
            t.start()
        # Both calls are on the background thread (their probes then wait on
        # the silent resolver for 3 s): stop only then, however slow the machine.
        end = time.monotonic() + 20
        while h.stderr_text().count("type=CALL ") < 2 and time.monotonic() < end:
            time.sleep(0.05)
        expect(h.stderr_text().count("type=CALL ") == 2, "the calls did not reach the background thread")
        time.sleep(0.1)
        t0 = time.monotonic()
        h.stop()  # fails on a non-zero exit, a hang or a sanitizer report
        for t in ts:
            t.join(10)
        expect(time.monotonic() - t0 < 3, "stop waited for the probes")
        for kind in ("verify", "diagnose"):
            expect(kind in out, "%s: no answer (%s)" % (kind, out.get(kind + " error")))
            expect_error(out[kind], 503, "unavailable")
    finally:
        h.cleanup()


def teardown():
    if os.environ.get("VERIFY_SHOW_LOG"):
        print("\n".join(line for line in H.stderr_text().splitlines() if "verify." in line or "error" in line))
    try:
        H.stop()
    finally:
        DNS.stop()


if __name__ == "__main__":
    run(teardown=teardown)
