#!/usr/bin/env python3
"""hooks_api: the webhook API against the real daemon — endpoint CRUD and
validation, secrets shown once, scopes and tenancy (404 across projects),
events listing and filters, rotation (both signatures, then only the new
one) and test sends."""

import time

from hooks_common import (Hee, Receiver, add_domain, create_endpoint, del_domain, endpoint, expect, free_port,
                          hook_conf, wait_until)
from heetest import expect_error, run, test

# A valid endpoint URL for tests that do not read deliveries: loopback (the
# allow-list covers it) and a port nothing listens on, so the deliveries that
# events cause fail at once, with no DNS lookup and nothing leaving the
# machine (a name like x.example went to the system resolver).
NOWHERE = "https://127.0.0.1:%d/h" % free_port()

H = None
P = None        # acme, all project scopes
OTHER = None    # another tenant


@test
def create_show_list_patch_delete():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, ["domain.created", "domain.deleted", "domain.created"],
                             description="main")
        expect(ep["events"] == ["domain.created", "domain.deleted"], "duplicates dropped: %r" % ep["events"])
        expect(ep["ordered"] is True and ep["disabled"] is False and ep["projectSlug"] == "acme", repr(ep))
        got = endpoint(P, ep["id"])
        expect("secret" not in got, "GET must never return the secret")
        lst = P.get("/v1/webhook-endpoints").json()
        expect(any(e["id"] == ep["id"] for e in lst["endpoints"]), "listed")
        expect(all("secret" not in e for e in lst["endpoints"]), "list has no secrets")
        r2 = P.patch("/v1/webhook-endpoints/" + ep["id"],
                     {"events": [], "description": "all", "ordered": False, "url": r.url + "?x=1"})
        expect(r2.status == 200, repr(r2))
        e2 = r2.json()["endpoint"]
        expect(e2["events"] == [] and e2["description"] == "all" and e2["ordered"] is False
               and e2["url"].endswith("?x=1") and "secret" not in e2, repr(e2))
        expect(P.delete("/v1/webhook-endpoints/" + ep["id"]).status == 204, "delete")
        expect_error(P.get("/v1/webhook-endpoints/" + ep["id"]), 404, "not_found")
        expect_error(P.delete("/v1/webhook-endpoints/" + ep["id"]), 404, "not_found")


@test
def validation():
    expect_error(P.post("/v1/webhook-endpoints", {"url": NOWHERE, "events": ["domain.nope"]}),
                 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": NOWHERE,
                                                  "events": ["domain_purchase.completed"]}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": "not a url"}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": "ftp://x.example/h"}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"events": []}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": NOWHERE, "secret": "mine"}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": NOWHERE, "description": "d" * 600}),
                 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints", {"url": NOWHERE, "events": "domain.created"}),
                 400, "invalid")
    ep = create_endpoint(P, NOWHERE)
    expect_error(P.patch("/v1/webhook-endpoints/" + ep["id"], {"disabled": "yes"}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints/%s/test" % ep["id"], {"type": "x.y"}), 400, "invalid")
    expect_error(P.post("/v1/webhook-endpoints/%s/recover" % ep["id"], {"since": "yesterday"}), 400, "invalid")
    expect_error(P.get("/v1/events?type=domain.nope"), 400, "invalid")
    expect_error(P.get("/v1/events?after=evt_nosuch"), 400, "invalid")
    P.delete("/v1/webhook-endpoints/" + ep["id"])


@test
def scopes_and_tenancy():
    ep = create_endpoint(P, NOWHERE)
    reader = H.new_token("acme", ["connections:read"])
    writer = H.new_token("acme", ["webhooks:write"])
    expect_error(reader.post("/v1/webhook-endpoints", {"url": NOWHERE}), 403, "forbidden")
    expect_error(reader.post("/v1/webhook-endpoints/%s/rotate-secret" % ep["id"]), 403, "forbidden")
    expect(reader.get("/v1/webhook-endpoints/" + ep["id"]).status == 200, "read with connections:read")
    expect_error(writer.get("/v1/webhook-endpoints"), 403, "forbidden")
    expect_error(writer.get("/v1/events"), 403, "forbidden")
    # Another tenant sees nothing of it, whatever the verb.
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                         ("POST", "/revoke-old-secret"), ("POST", "/test"), ("GET", "/attempts"),
                         ("GET", "/dead-letters")):
        body = {} if method in ("PATCH", "POST") else None
        expect_error(OTHER.request(method, "/v1/webhook-endpoints/" + ep["id"] + path, body=body), 404, "not_found")
    expect_error(OTHER.post("/v1/webhook-endpoints/%s/recover" % ep["id"], {"since": "2020-01-01T00:00:00Z"}),
                 404, "not_found")
    expect(all(e["id"] != ep["id"] for e in OTHER.get("/v1/webhook-endpoints").json()["endpoints"]),
           "not in the other tenant's list")
    # Its events too.
    add_domain(P, "tenancy.example.com")
    ev = P.get("/v1/events?type=domain.created").json()["events"][-1]
    expect_error(OTHER.get("/v1/events/" + ev["id"]), 404, "not_found")
    expect_error(OTHER.post("/v1/events/%s/redeliver" % ev["id"], {}), 404, "not_found")
    expect(all(e["id"] != ev["id"] for e in OTHER.get("/v1/events").json()["events"]), "not listed for other")
    # Redelivering to an endpoint of another project is refused too.
    oep = create_endpoint(OTHER, NOWHERE)
    expect_error(P.post("/v1/events/%s/redeliver" % ev["id"], {"endpointId": oep["id"]}), 404, "not_found")
    # Operators must say which project an endpoint is for.
    adm = H.admin()
    expect_error(adm.post("/v1/webhook-endpoints", {"url": NOWHERE}), 400, "invalid")
    aep = create_endpoint(adm, NOWHERE, projectSlug="other")
    expect(aep["projectSlug"] == "other", repr(aep))
    ids = [e["id"] for e in adm.get("/v1/webhook-endpoints").json()["endpoints"]]
    expect(ep["id"] in ids and aep["id"] in ids, "operators list every project")
    for e in (ep["id"],):
        P.delete("/v1/webhook-endpoints/" + e)
    for e in (oep["id"], aep["id"]):
        OTHER.delete("/v1/webhook-endpoints/" + e)
    del_domain(P, "tenancy.example.com")


@test
def events_listing():
    add_domain(P, "list1.example.com")
    add_domain(P, "list2.example.com")
    del_domain(P, "list1.example.com")
    evs = P.get("/v1/events?limit=100").json()
    expect(evs["nextCursor"] is None, "one page")
    types = [e["type"] for e in evs["events"]]
    expect(types.count("domain.deleted") >= 1 and types.count("domain.created") >= 2, repr(types))
    only = P.get("/v1/events?type=domain.deleted").json()["events"]
    expect(only and all(e["type"] == "domain.deleted" for e in only), "type filter")
    both = P.get("/v1/events?type=domain.deleted,domain.created").json()["events"]
    expect(len(both) == len(evs["events"]), "comma-separated types")
    # Paging with after=: one at a time walks the same list in order.
    seen, after = [], None
    while True:
        q = "/v1/events?limit=1" + ("&after=" + after if after else "")
        page = P.get(q).json()
        seen += [e["id"] for e in page["events"]]
        after = page["nextCursor"]
        if not after:
            break
    expect(seen == [e["id"] for e in evs["events"]], "paging: %r vs %r" % (seen, evs["events"]))
    one = P.get("/v1/events/" + evs["events"][0]["id"])
    expect(one.status == 200 and one.json()["event"] == evs["events"][0] and "deliveries" in one.json(), repr(one))
    expect_error(P.get("/v1/events/evt_nosuch"), 404, "not_found")
    del_domain(P, "list2.example.com")


@test
def rotation_signs_with_both_then_new():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, ["domain.created"])
        old = ep["secret"]
        r.set_secrets([old])
        add_domain(P, "rot1.example.com")
        d = r.wait_count(1)[-1]
        expect(d.verified and d.hee_naive_ok and "x-hee-signature-previous" not in d.headers, repr(d))
        rot = P.post("/v1/webhook-endpoints/%s/rotate-secret" % ep["id"])
        expect(rot.status == 200, repr(rot))
        new = rot.json()["endpoint"]["secret"]
        expect(new != old and new.startswith("whsec_"), "a new secret")
        expect(rot.json()["endpoint"]["previousSecretExpiresAt"] is not None, "overlap shown")
        expect("secret" not in endpoint(P, ep["id"]), "secret shown only once")
        # A receiver still holding the old secret verifies (std list, -Previous)…
        add_domain(P, "rot2.example.com")
        d = r.wait_count(2)[-1]
        expect(d.verified and not d.hee_naive_ok, "old-secret receiver: %r" % d)
        expect(len(d.headers["webhook-signature"].split()) == 2, "two v1 entries during the overlap")
        # …and one holding the new secret verifies naively.
        r.set_secrets([new])
        add_domain(P, "rot3.example.com")
        d = r.wait_count(3)[-1]
        expect(d.verified and d.hee_naive_ok, "new-secret receiver: %r" % d)
        # Revoking the old secret: only the new one signs.
        rv = P.post("/v1/webhook-endpoints/%s/revoke-old-secret" % ep["id"])
        expect(rv.status == 200 and "secret" not in rv.json()["endpoint"]
               and rv.json()["endpoint"]["previousSecretExpiresAt"] is None, repr(rv))
        add_domain(P, "rot4.example.com")
        d = r.wait_count(4)[-1]
        expect(d.verified and "x-hee-signature-previous" not in d.headers
               and len(d.headers["webhook-signature"].split()) == 1, "only the new secret: %r" % d)
        r.set_secrets([old])
        add_domain(P, "rot5.example.com")
        d = r.wait_count(5)[-1]
        expect(not d.std_ok and not d.hee_ok, "the old secret no longer verifies")
        P.delete("/v1/webhook-endpoints/" + ep["id"])
    for i in range(1, 6):
        del_domain(P, "rot%d.example.com" % i)


@test
def rotation_overlap_expires():
    h2 = Hee(hook_conf(secret_overlap="1s"))
    try:
        p = h2.new_project("acme")
        with Receiver([]) as r:
            ep = create_endpoint(p, r.url, ["domain.created"])
            new = p.post("/v1/webhook-endpoints/%s/rotate-secret" % ep["id"]).json()["endpoint"]["secret"]
            time.sleep(1.2)
            r.set_secrets([new])
            add_domain(p, "exp.example.com")
            d = r.wait_count(1)[-1]
            expect(d.verified and len(d.headers["webhook-signature"].split()) == 1
                   and "x-hee-signature-previous" not in d.headers, "old secret expired: %r" % d)
        h2.stop()
    finally:
        h2.cleanup()


@test
def test_send():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, ["domain.deleted"])
        r.set_secrets([ep["secret"]])
        before = len(P.get("/v1/events?limit=100").json()["events"])
        t = P.post("/v1/webhook-endpoints/%s/test" % ep["id"], {"type": "ssl.issued"})
        expect(t.status == 200, repr(t))
        res = t.json()["test"]
        expect(res["delivered"] is True and res["statusCode"] == 200 and res["eventId"].startswith("evt_test_"),
               repr(res))
        d = r.wait_count(1)[-1]
        expect(d.verified and d.json["test"] is True and d.json["type"] == "ssl.issued"
               and d.msg_id == res["eventId"], repr(d.json))
        expect(len(P.get("/v1/events?limit=100").json()["events"]) == before, "a test event is not stored")
        expect(P.get("/v1/webhook-endpoints/%s/attempts" % ep["id"]).json()["attempts"] == [],
               "a test send is not an attempt")
        r.set_responses([500])
        t = P.post("/v1/webhook-endpoints/%s/test" % ep["id"]).json()["test"]
        expect(t["delivered"] is False and t["statusCode"] == 500 and t["error"] == "HTTP 500", repr(t))
        P.delete("/v1/webhook-endpoints/" + ep["id"])


def main():
    global H, P, OTHER
    H = Hee(hook_conf())
    P = H.new_project("acme")
    OTHER = H.new_project("other")

    def teardown():
        H.stop()
        H.cleanup()

    run(teardown=teardown)


if __name__ == "__main__":
    main()
