"""Control API end to end: every endpoint's success path and every error the
API promises (401, 403, 404, 400, 405, 409, 402, 413, 415, 429), metadata
verbatim, events and audit written with the change."""
import json
import time

from heetest import Hee, expect, expect_error, run, test

H = Hee(conf={"edge": {"target": "edge.test.example"}, "api": {"upgrade_url": "https://example.test/up"}})
ADMIN = H.admin()
DOMAIN_KEYS = {"hostname", "projectSlug", "verified", "verifiedAt", "createdAt", "metadata", "state",
               "ownershipChallenge", "cnameTarget", "certificate", "removedAt"}


def project(slug, **kw):
    return H.new_project(slug, **kw)


@test
def public_endpoints():
    c = H.client()
    expect(c.get("/healthz").status == 200)
    expect(c.get("/readyz").status == 200)
    r = c.get("/v1/openapi.yaml")
    expect(r.status == 200 and b"openapi: 3" in r.body, r)
    expect(r.headers["content-type"].startswith("application/yaml"))


@test
def authentication_errors():
    c = H.client()
    r = c.get("/v1/edge/domains")
    expect_error(r, 401, "unauthorized")
    expect(r.headers.get("www-authenticate") == "Bearer", r.headers)
    expect_error(c.get("/v1/edge/domains", headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401, "unauthorized")
    expect_error(c.with_token("hee_notatoken").get("/v1/edge/domains"), 401, "unauthorized")
    expect_error(c.with_token("x" * 300).get("/v1/edge/domains"), 401, "unauthorized")
    expect_error(ADMIN.get("/v1/nothing/here"), 404, "not_found")
    expect_error(ADMIN.get("/v1/edge/domains/a.example.com/extra/more"), 404, "not_found")


@test
def scopes_are_enforced():
    project("scoped")
    ro = H.new_token("scoped", ["connections:read"])
    expect_error(ro.post("/v1/edge/domains", {"hostname": "ro.example.com"}), 403, "forbidden")
    r = ro.get("/v1/usage")
    expect_error(r, 403, "forbidden")
    expect("usage:read" in r.json()["error"]["message"], r)
    expect_error(ro.get("/v1/projects"), 403, "forbidden")
    expect_error(ro.post("/v1/tokens", {"projectSlug": "scoped", "scopes": ["connections:read"]}), 403, "forbidden")
    wo = H.new_token("scoped", ["connections:write"])
    expect(wo.post("/v1/edge/domains", {"hostname": "wo.example.com"}).status == 201)
    expect_error(wo.get("/v1/edge/domains/wo.example.com"), 403, "forbidden")
    expect_error(wo.get("/v1/edge/resolve?hostname=wo.example.com"), 403, "forbidden")


@test
def project_crud():
    r = ADMIN.post("/v1/projects", {"slug": "crud", "upstream": "https://127.0.0.1:9",
                                    "upstreamFallback": "http://10.0.0.2:8080", "maxDomains": 7,
                                    "settings": {"verification": ["cname", "txt"], "forwardMetadata": True,
                                                 "maxBodyBytes": 1048576}})
    expect(r.status == 201, r)
    p = r.json()["project"]
    expect(p["slug"] == "crud" and p["maxDomains"] == 7 and p["activeDomains"] == 0, p)
    expect(p["upstreamFallback"] == "http://10.0.0.2:8080", p)
    expect(p["settings"] == {"verification": ["cname", "txt"], "forwardMetadata": True, "maxBodyBytes": 1048576})
    expect(len(p["hmacKey"]) == 43, p)
    expect(r.headers.get("cache-control") == "no-store")
    # defaults: free tier
    r = ADMIN.post("/v1/projects", {"slug": "crud-2", "upstream": "http://127.0.0.1:1"})
    expect(r.json()["project"]["maxDomains"] == 50 and r.json()["project"]["settings"] == {}, r)
    expect_error(ADMIN.post("/v1/projects", {"slug": "crud", "upstream": "http://x.example"}), 400, "invalid")
    for bad in ({"slug": "Bad_Slug", "upstream": "http://x.example"},
                {"slug": "-lead", "upstream": "http://x.example"},
                {"slug": "a" * 64, "upstream": "http://x.example"},
                {"slug": "ok", "upstream": "ftp://x.example"},
                {"slug": "ok", "upstream": "not a url"},
                {"slug": "ok", "upstream": "http://user:pw@x.example"},
                {"slug": "ok"},
                {"upstream": "http://x.example"},
                {"slug": 5, "upstream": "http://x.example"},
                {"slug": "ok", "upstream": "http://x.example", "maxDomains": -1},
                {"slug": "ok", "upstream": "http://x.example", "maxDomains": "3"},
                {"slug": "ok", "upstream": "http://x.example", "bogus": 1},
                {"slug": "ok", "upstream": "http://x.example", "settings": {"verification": []}},
                {"slug": "ok", "upstream": "http://x.example", "settings": {"verification": ["mx"]}},
                {"slug": "ok", "upstream": "http://x.example", "settings": {"verification": "trust-me"}},
                {"slug": "ok", "upstream": "http://x.example", "settings": {"forwardMetadata": "yes"}},
                {"slug": "ok", "upstream": "http://x.example", "settings": {"colour": "red"}},
                {"slug": "ok", "upstream": "http://x.example", "settings": []}):
        expect_error(ADMIN.post("/v1/projects", bad), 400, "invalid")
    expect_error(ADMIN.get("/v1/projects/ok"), 404, "not_found")
    r = ADMIN.get("/v1/projects/crud")
    expect(r.status == 200 and "hmacKey" in r.json()["project"], r)
    r = ADMIN.patch("/v1/projects/crud", {"upstreamFallback": None, "maxDomains": 9,
                                          "settings": {"verification": "registration"}})
    expect(r.status == 200, r)
    p = r.json()["project"]
    expect(p["upstreamFallback"] is None and p["maxDomains"] == 9 and p["upstream"] == "https://127.0.0.1:9", p)
    expect(p["settings"] == {"verification": "registration"}, p)
    expect_error(ADMIN.patch("/v1/projects/crud", {}), 400, "invalid")
    expect_error(ADMIN.patch("/v1/projects/crud", {"slug": "renamed"}), 400, "invalid")
    expect_error(ADMIN.patch("/v1/projects/nope", {"maxDomains": 1}), 404, "not_found")
    # list with pagination
    seen, cursor = [], None
    while True:
        r = ADMIN.get("/v1/projects?limit=2" + ("&cursor=" + cursor if cursor else ""))
        expect(r.status == 200, r)
        seen += [p["slug"] for p in r.json()["projects"]]
        expect(all("hmacKey" not in p for p in r.json()["projects"]))
        cursor = r.json()["nextCursor"]
        if not cursor:
            break
    expect("crud" in seen and "crud-2" in seen and len(seen) == len(set(seen)), seen)
    expect_error(ADMIN.get("/v1/projects?limit=0"), 400, "invalid")
    expect_error(ADMIN.get("/v1/projects?cursor=abc"), 400, "invalid")
    expect_error(ADMIN.get("/v1/projects?colour=red"), 400, "invalid")
    # delete: refused with domains, then allowed; its tokens die with it
    tok = H.new_token("crud", ["connections:read", "connections:write"])
    expect(tok.post("/v1/edge/domains", {"hostname": "crud.example.com"}).status == 201)
    expect_error(ADMIN.delete("/v1/projects/crud"), 400, "invalid")
    expect(tok.delete("/v1/edge/domains/crud.example.com").status == 200)
    r = ADMIN.delete("/v1/projects/crud")
    expect(r.status == 204 and r.body == b"", r)
    expect_error(ADMIN.get("/v1/projects/crud"), 404, "not_found")
    expect_error(tok.get("/v1/edge/domains"), 401, "unauthorized")
    expect_error(ADMIN.delete("/v1/projects/crud"), 404, "not_found")
    # a deleted project's slug is not reused
    expect_error(ADMIN.post("/v1/projects", {"slug": "crud", "upstream": "http://x.example"}), 400, "invalid")


@test
def token_lifecycle():
    ADMIN.post("/v1/projects", {"slug": "toks", "upstream": "http://127.0.0.1:1"})
    r = ADMIN.post("/v1/tokens", {"projectSlug": "toks", "scopes": ["connections:read", "usage:read"],
                                  "name": "backend"})
    expect(r.status == 201, r)
    t = r.json()["token"]
    expect(t["id"].startswith("tok_") and t["token"].startswith("hee_"), t)
    expect(t["scopes"] == ["connections:read", "usage:read"] and t["projectSlug"] == "toks", t)
    expect(t["lastUsedAt"] is None and t["revokedAt"] is None and t["name"] == "backend", t)
    # scope text form too
    r = ADMIN.post("/v1/tokens", {"projectSlug": "toks", "scopes": "connections:write webhooks:write"})
    expect(r.status == 201 and r.json()["token"]["scopes"] == ["connections:write", "webhooks:write"], r)
    for bad in ({"projectSlug": "toks", "scopes": ["apps:admin"]},
                {"projectSlug": "toks", "scopes": ["connections:read", "root"]},
                {"projectSlug": "toks", "scopes": []},
                {"projectSlug": "toks"},
                {"scopes": ["connections:read"]},
                {"admin": True, "projectSlug": "toks"},
                {"admin": True, "scopes": ["connections:read"]},
                {"projectSlug": "toks", "scopes": [1]},
                {"projectSlug": "toks", "scopes": ["connections:read"], "extra": 1}):
        expect_error(ADMIN.post("/v1/tokens", bad), 400, "invalid")
    expect_error(ADMIN.post("/v1/tokens", {"projectSlug": "nope", "scopes": ["connections:read"]}), 404,
                 "not_found")
    # secrets are never listed
    r = ADMIN.get("/v1/tokens?project=toks")
    expect(r.status == 200 and len(r.json()["tokens"]) == 2, r)
    expect(all("token" not in x for x in r.json()["tokens"]))
    expect(t["token"].encode() not in r.body)
    # use, then lastUsedAt is recorded within a flush period
    c = H.client(t["token"])
    expect(c.get("/v1/edge/domains").status == 200)
    deadline = time.time() + 12
    while time.time() < deadline:
        row = [x for x in ADMIN.get("/v1/tokens?project=toks").json()["tokens"] if x["id"] == t["id"]][0]
        if row["lastUsedAt"]:
            break
        time.sleep(0.5)
    expect(row["lastUsedAt"], "lastUsedAt never set")
    # the hash only is stored
    rows = H.sql("SELECT hash FROM tokens WHERE id = ?", (t["id"],))
    expect(len(rows) == 1 and len(rows[0][0]) == 32 and t["token"].encode() not in rows[0][0])
    # revocation is immediate (the cache is dropped)
    r = ADMIN.delete("/v1/tokens/" + t["id"])
    expect(r.status == 204, r)
    expect_error(c.get("/v1/edge/domains"), 401, "unauthorized")
    expect_error(ADMIN.delete("/v1/tokens/" + t["id"]), 404, "not_found")
    expect_error(ADMIN.delete("/v1/tokens/tok_nope"), 404, "not_found")
    row = [x for x in ADMIN.get("/v1/tokens?project=toks").json()["tokens"] if x["id"] == t["id"]][0]
    expect(row["revokedAt"], row)
    # a second operator token works like the first
    r = ADMIN.post("/v1/tokens", {"admin": True, "name": "ops"})
    expect(r.status == 201 and r.json()["token"]["projectSlug"] is None, r)
    expect(r.json()["token"]["scopes"] == ["apps:admin"], r)
    expect(H.client(r.json()["token"]["token"]).get("/v1/projects").status == 200)
    r = ADMIN.get("/v1/tokens?admin=true")
    expect(all(x["projectSlug"] is None for x in r.json()["tokens"]) and len(r.json()["tokens"]) >= 2, r)
    expect_error(ADMIN.get("/v1/tokens?admin=maybe"), 400, "invalid")
    expect_error(ADMIN.get("/v1/tokens?cursor=zzz"), 400, "invalid")


@test
def domain_register_and_read():
    c = project("dom")
    meta = '{ "workspaceId" : "ws_abc123", "n": 1.50, "big": 1e3, "u": "\\u00e9\u00e9", "nested": {"a": [1, 2 ,3]} }'
    r = c.post("/v1/edge/domains", raw=('{"hostname": "Docs.Customer.COM.", "metadata": %s}' % meta).encode())
    expect(r.status == 201, r)
    d = r.json()["domain"]
    expect(set(d) == DOMAIN_KEYS, sorted(d))
    expect(d["hostname"] == "docs.customer.com" and d["projectSlug"] == "dom", d)
    expect(d["verified"] is False and d["verifiedAt"] is None and d["removedAt"] is None, d)
    expect(d["state"] == "pending_ownership", d)
    expect(d["ownershipChallenge"]["name"] == "_customdomain-challenge.docs.customer.com", d)
    expect(d["ownershipChallenge"]["type"] == "TXT" and len(d["ownershipChallenge"]["value"]) >= 20, d)
    expect(d["cnameTarget"] == "edge.test.example", d)
    expect(d["certificate"] == {"status": "none", "notAfter": None, "issuer": None}, d)
    expect(d["createdAt"].endswith("Z"), d)
    # metadata comes back byte for byte
    expect((b'"metadata":' + meta.encode()) in r.body, r.body)
    r = c.get("/v1/edge/domains/DOCS.customer.com")
    expect(r.status == 200 and r.json()["domain"]["hostname"] == "docs.customer.com", r)
    expect((b'"metadata":' + meta.encode()) in r.body)
    r = c.get("/v1/edge/resolve?hostname=docs.customer.com.")
    expect(r.status == 200, r)
    expect(r.body == ('{"hostname":"docs.customer.com","projectSlug":"dom","verified":false,"verifiedAt":null,'
                      '"state":"pending_ownership","metadata":%s}' % meta).encode(), r.body)
    # IDN: U-label in, A-label out, both spellings find it
    r = c.post("/v1/edge/domains", {"hostname": "b\u00fccher.example.com"})
    expect(r.status == 201 and r.json()["domain"]["hostname"] == "xn--bcher-kva.example.com", r)
    expect(r.json()["domain"]["metadata"] == {}, r)
    expect(c.get("/v1/edge/domains/b%C3%BCcher.example.com").status == 200)
    expect(c.get("/v1/edge/resolve?hostname=b%C3%BCcher.example.com").status == 200)
    # list, filters, pagination
    for i in range(5):
        expect(c.post("/v1/edge/domains", {"hostname": "p%d.example.com" % i}).status == 201)
    names, cursor = [], None
    while True:
        r = c.get("/v1/edge/domains?limit=3" + ("&cursor=" + cursor if cursor else ""))
        expect(r.status == 200, r)
        names += [x["hostname"] for x in r.json()["domains"]]
        cursor = r.json()["nextCursor"]
        if not cursor:
            break
    expect(names == ["docs.customer.com", "xn--bcher-kva.example.com"] + ["p%d.example.com" % i for i in range(5)],
           names)
    r = c.get("/v1/edge/domains?state=pending_ownership&verified=false&limit=1000")
    expect(len(r.json()["domains"]) == 7, r)
    expect(len(c.get("/v1/edge/domains?verified=true").json()["domains"]) == 0)
    expect(len(c.get("/v1/edge/domains?state=live").json()["domains"]) == 0)
    expect_error(c.get("/v1/edge/domains?state=bogus"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains?verified=yes"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains?limit=1001"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains?limit=x"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains?includeRemoved=1"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains?sort=name"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains/nope.example.com"), 404, "not_found")
    expect_error(c.get("/v1/edge/domains/not_valid!"), 400, "invalid")


@test
def invalid_hostnames():
    c = project("badhosts")
    cases = {
        "localhost": "single-label", "192.0.2.1": "IP", "[2001:db8::1]": "IP", "*.example.com": "wildcard",
        "co.uk": "public suffix", "github.io": "public suffix", "edge.test.example": "edge",
        "x.edge.test.example": "edge", "a..example.com": "empty label", ("a" * 64) + ".example.com": "63",
        "-x.example.com": "hyphen", "a_b.example.com": "underscore", "a b.example.com": "whitespace", "": "empty",
    }
    for host, why in cases.items():
        r = c.post("/v1/edge/domains", {"hostname": host})
        expect_error(r, 400, "invalid")
        expect(why in r.json()["error"]["message"], (host, r.json()))
    expect_error(c.post("/v1/edge/domains", {"hostname": 7}), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", {"metadata": {}}), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", {"hostname": "ok.example.com", "colour": 1}), 400, "invalid")
    expect(H.sql("SELECT count(*) FROM domains d JOIN projects p ON p.id = d.project_id WHERE p.slug = 'badhosts'")
           [0][0] == 0)


@test
def metadata_rules():
    c = project("meta")
    for bad in ([1], "x", 3, None, True):
        expect_error(c.post("/v1/edge/domains", {"hostname": "m.example.com", "metadata": bad}), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'{"hostname":"m.example.com","metadata":{"a":1,"a":2}}'), 400,
                 "invalid")
    # exactly 16 KiB is accepted; one byte more is not
    pad = 16384 - len('{"k":""}')
    exact = '{"k":"%s"}' % ("x" * pad)
    expect(len(exact) == 16384)
    r = c.post("/v1/edge/domains", raw=('{"hostname":"m.example.com","metadata":%s}' % exact).encode())
    expect(r.status == 201, r)
    over = '{"k":"%s"}' % ("x" * (pad + 1))
    r = c.post("/v1/edge/domains", raw=('{"hostname":"m2.example.com","metadata":%s}' % over).encode())
    expect_error(r, 400, "invalid")
    expect("16384" in r.json()["error"]["message"], r)
    # PATCH replaces verbatim
    new = '{"b":\n  [true, null, -0.0, 12345678901234], "s": "line\\nbreak"}'
    r = c.patch("/v1/edge/domains/m.example.com", raw=('{"metadata": %s }' % new).encode())
    expect(r.status == 200 and (b'"metadata":' + new.encode()) in r.body, r)
    r = c.get("/v1/edge/resolve?hostname=m.example.com")
    expect(r.body.endswith(b'"metadata":' + new.encode() + b"}"), r.body)
    expect(H.sql("SELECT metadata FROM domains WHERE hostname = 'm.example.com' AND removed_at IS NULL")[0][0] == new)
    expect_error(c.patch("/v1/edge/domains/m.example.com", {"metadata": [1]}), 400, "invalid")
    expect_error(c.patch("/v1/edge/domains/m.example.com", {}), 400, "invalid")
    expect_error(c.patch("/v1/edge/domains/m.example.com", {"hostname": "x.example.com"}), 400, "invalid")
    expect_error(c.patch("/v1/edge/domains/nope.example.com", {"metadata": {}}), 404, "not_found")
    # metadata never reaches the log
    expect("12345678901234" not in H.stderr_text() and "workspaceId" not in H.stderr_text())


@test
def conflict_delete_and_reregister():
    a = project("conf-a")
    b = project("conf-b")
    r = a.post("/v1/edge/domains", {"hostname": "shop.example.org", "metadata": {"t": "a"}})
    expect(r.status == 201, r)
    first = r.json()["domain"]
    expect_error(a.post("/v1/edge/domains", {"hostname": "SHOP.example.org."}), 409, "HostnameConflict")
    expect_error(b.post("/v1/edge/domains", {"hostname": "shop.example.org"}), 409, "HostnameConflict")
    r = a.delete("/v1/edge/domains/shop.example.org")
    expect(r.status == 200 and r.json()["domain"]["removedAt"], r)
    expect_error(a.delete("/v1/edge/domains/shop.example.org"), 404, "not_found")
    expect_error(a.get("/v1/edge/resolve?hostname=shop.example.org"), 404, "not_found")
    # the removed row is still A's history
    r = a.get("/v1/edge/domains/shop.example.org")
    expect(r.status == 200 and r.json()["domain"]["removedAt"], r)
    # anyone may register it again: new row, unverified, fresh challenge
    r = b.post("/v1/edge/domains", {"hostname": "shop.example.org"})
    expect(r.status == 201, r)
    second = r.json()["domain"]
    expect(second["projectSlug"] == "conf-b" and second["verified"] is False, second)
    expect(second["ownershipChallenge"]["value"] != first["ownershipChallenge"]["value"])
    expect(second["metadata"] == {}, second)
    rows = H.sql("SELECT project_id, removed_at IS NULL FROM domains WHERE hostname = 'shop.example.org' ORDER BY id")
    expect(len(rows) == 2 and rows[0][1] == 0 and rows[1][1] == 1, rows)
    # A still sees only its removed row; B sees the active one
    expect(a.get("/v1/edge/domains/shop.example.org").json()["domain"]["projectSlug"] == "conf-a")
    expect(b.get("/v1/edge/domains/shop.example.org").json()["domain"]["removedAt"] is None)
    r = a.get("/v1/edge/domains?includeRemoved=true")
    expect([x["hostname"] for x in r.json()["domains"]] == ["shop.example.org"], r)
    expect(a.get("/v1/edge/domains").json()["domains"] == [])


@test
def quota_exceeded():
    c = project("quota", maxDomains=2)
    expect(c.post("/v1/edge/domains", {"hostname": "q1.example.com"}).status == 201)
    expect(c.post("/v1/edge/domains", {"hostname": "q2.example.com"}).status == 201)
    r = c.post("/v1/edge/domains", {"hostname": "q3.example.com"})
    expect_error(r, 402, "QuotaExceeded")
    expect(r.json()["error"]["upgrade_url"] == "https://example.test/up", r)
    expect(c.get("/v1/edge/domains/q3.example.com").status == 404)
    expect(c.delete("/v1/edge/domains/q1.example.com").status == 200)
    expect(c.post("/v1/edge/domains", {"hostname": "q3.example.com"}).status == 201)
    ADMIN.patch("/v1/projects/quota", {"maxDomains": 3})
    expect(c.post("/v1/edge/domains", {"hostname": "q4.example.com"}).status == 201)
    expect(ADMIN.get("/v1/projects/quota").json()["project"]["activeDomains"] == 3)


@test
def request_errors():
    c = project("reqerr")
    expect_error(c.post("/v1/edge/domains", raw=b'{"hostname": '), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'["a.example.com"]'), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'{"hostname":"a.example.com"} trailing'), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'\xff\xfe{}'), 400, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'hostname=a.example.com',
                        ctype="application/x-www-form-urlencoded"), 415, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'{"hostname":"a.example.com"}', ctype=None), 415, "invalid")
    expect_error(c.post("/v1/edge/domains", raw=b'{"hostname":"a.example.com"}',
                        ctype="application/json; charset=latin1"), 415, "invalid")
    expect(c.post("/v1/edge/domains", raw=b'{"hostname":"ct.example.com"}',
                  ctype="Application/JSON; charset=UTF-8").status == 201)
    expect_error(c.post("/v1/edge/domains"), 400, "invalid")  # no body at all
    big = b'{"hostname":"big.example.com","metadata":{"k":"' + b"x" * 70000 + b'"}}'
    r = c.post("/v1/edge/domains", raw=big)
    expect_error(r, 413, "invalid")
    expect_error(c.request("DELETE", "/v1/edge/domains/ct.example.com", raw=b"{}"), 400, "invalid")
    r = c.put("/v1/edge/domains", {"hostname": "x.example.com"})
    expect_error(r, 405, "invalid")
    expect(r.headers.get("allow") == "GET, HEAD, POST", r.headers)
    r = c.request("POST", "/v1/edge/domains/ct.example.com", body={})
    expect_error(r, 405, "invalid")
    expect(r.headers.get("allow") == "GET, HEAD, PATCH, DELETE", r.headers)
    r = c.request("OPTIONS", "/v1/edge/resolve")
    expect(r.status == 204 and r.headers.get("allow") == "GET, HEAD", r)
    r = c.request("HEAD", "/v1/edge/domains/ct.example.com")
    expect(r.status == 200 and r.body == b"", r)
    expect_error(c.get("/v1/edge/domains/%ZZ"), 400, "invalid")
    expect_error(c.get("/v1/edge/domains/a%00b.example.com"), 400, "invalid")


@test
def resolve_rules():
    a = project("res-a")
    b = project("res-b")
    a.post("/v1/edge/domains", {"hostname": "app.tenant-a.com", "metadata": {"k": 1}})
    r = a.get("/v1/edge/resolve?hostname=app.tenant-a.com")
    expect(r.status == 200 and r.json()["projectSlug"] == "res-a", r)
    expect(set(r.json()) == {"hostname", "projectSlug", "verified", "verifiedAt", "state", "metadata"})
    miss = b.get("/v1/edge/resolve?hostname=never.example.com")
    other = b.get("/v1/edge/resolve?hostname=app.tenant-a.com")
    expect_error(miss, 404, "not_found")
    expect_error(other, 404, "not_found")
    expect(miss.json()["error"]["message"] == other.json()["error"]["message"])
    expect(set(miss.headers) == set(other.headers), (miss.headers, other.headers))
    expect(len(miss.body) == len(other.body))
    # only the owning project's tokens: an operator token is another caller
    expect_error(ADMIN.get("/v1/edge/resolve?hostname=app.tenant-a.com"), 404, "not_found")
    expect_error(a.get("/v1/edge/resolve"), 400, "invalid")
    expect_error(a.get("/v1/edge/resolve?hostname="), 400, "invalid")
    expect_error(a.get("/v1/edge/resolve?host=app.tenant-a.com"), 400, "invalid")
    expect_error(a.get("/v1/edge/resolve?hostname=app.tenant-a.com&hostname=x.com"), 400, "invalid")
    expect_error(a.get("/v1/edge/resolve?hostname=%zz"), 400, "invalid")
    expect_error(a.get("/v1/edge/resolve?hostname=1.2.3.4"), 400, "invalid")
    expect(a.get("/v1/edge/resolve?hostname=APP.Tenant-A.com.").status == 200)


@test
def events_written_with_the_change():
    c = project("ev")
    pid = H.sql("SELECT id FROM projects WHERE slug = 'ev'")[0][0]
    # webhook endpoints are another module's; rows are enough to check fan-out
    import sqlite3
    db = sqlite3.connect(H.db_path, timeout=10)
    now = int(time.time() * 1000)
    for wid, events, disabled, deleted in (("whe_all", "[]", 0, None), ("whe_del", '["domain.deleted"]', 0, None),
                                           ("whe_off", "[]", 1, None), ("whe_gone", "[]", 0, now),
                                           ("whe_other", '["domain.verified"]', 0, None)):
        db.execute("INSERT INTO webhook_endpoints (id, project_id, url, secret, events, disabled, created_at, "
                   "updated_at, deleted_at) VALUES (?,?,?,?,?,?,?,?,?)",
                   (wid, pid, "http://127.0.0.1:9/hook", "whsec_x", events, disabled, now, now, deleted))
    db.commit()
    db.close()
    r = c.post("/v1/edge/domains", {"hostname": "ev.example.com", "metadata": {"z": 1}})
    created = r.json()["domain"]
    r = c.delete("/v1/edge/domains/ev.example.com")
    deleted = r.json()["domain"]
    rows = H.sql("SELECT e.id, e.public_id, e.type, e.sequence, e.payload FROM events e JOIN domains d "
                 "ON d.id = e.domain_id WHERE d.hostname = 'ev.example.com' ORDER BY e.id")
    expect([x[2] for x in rows] == ["domain.created", "domain.deleted"], rows)
    expect([x[3] for x in rows] == [1, 2], rows)
    for (eid, pub, typ, seq, payload), dom in zip(rows, (created, deleted)):
        env = json.loads(payload)
        expect(list(env) == ["id", "type", "createdAt", "sequence", "data"], env)
        expect(env["id"] == pub and pub.startswith("evt_") and env["type"] == typ and env["sequence"] == seq)
        expect(env["data"] == {"domain": dom}, (env["data"], dom))
        expect('"metadata":{"z": 1}' in payload or '"metadata":{"z":1}' in payload, payload)
    dl = H.sql("SELECT e.type, d.endpoint_id, d.status FROM deliveries d JOIN events e ON e.id = d.event_id "
               "JOIN domains m ON m.id = e.domain_id WHERE m.hostname = 'ev.example.com' ORDER BY d.id")
    got = sorted((t, w) for t, w, s in dl)
    expect(got == [("domain.created", "whe_all"), ("domain.deleted", "whe_all"), ("domain.deleted", "whe_del")], dl)


@test
def usage_and_audit():
    c = project("use")
    for i in range(3):
        c.post("/v1/edge/domains", {"hostname": "u%d.example.com" % i})
    c.delete("/v1/edge/domains/u0.example.com")
    for _ in range(5):
        c.get("/v1/edge/resolve?hostname=u1.example.com")
    period = time.strftime("%Y-%m", time.gmtime())
    r = c.get("/v1/usage?period=" + period)
    expect(r.status == 200, r)
    u = r.json()
    expect(u["projectSlug"] == "use" and u["period"] == period, u)
    expect(set(u["usage"]) == {"connect", "active_domain", "cert", "api_call"}, u)
    expect(u["usage"]["api_call"] >= 9, u)
    expect(u["usage"]["active_domain"] == 3, u)
    r = c.get("/v1/usage")
    expect(r.status == 200 and r.json()["period"] == period, r)
    expect(c.get("/v1/usage?period=1999-01").json()["usage"] == {"connect": 0, "active_domain": 0, "cert": 0,
                                                                  "api_call": 0})
    for bad in ("2024-13", "2024-1", "24-01", "2024/01", "abcd-ef"):
        expect_error(c.get("/v1/usage?period=" + bad), 400, "invalid")
    expect_error(ADMIN.get("/v1/usage"), 400, "invalid")
    expect(ADMIN.get("/v1/usage?project=use").status == 200)
    expect_error(c.get("/v1/usage?project=toks"), 404, "not_found")
    r = c.get("/v1/audit?limit=1000")
    expect(r.status == 200, r)
    acts = [(e["action"], e["target"]) for e in r.json()["entries"]]
    expect(acts[0] == ("domain.delete", "u0.example.com"), acts)
    expect(("domain.create", "u2.example.com") in acts and ("project.create", "use") in acts, acts)
    expect(all(e["projectSlug"] == "use" for e in r.json()["entries"]))
    tok_entries = [e for e in r.json()["entries"] if e["action"] == "domain.create"]
    expect(all(e["tokenId"].startswith("tok_") for e in tok_entries))
    r1 = c.get("/v1/audit?limit=2")
    expect(len(r1.json()["entries"]) == 2 and r1.json()["nextCursor"], r1)
    r2 = c.get("/v1/audit?limit=2&cursor=" + r1.json()["nextCursor"])
    expect(r2.json()["entries"][0]["id"] < r1.json()["entries"][-1]["id"], r2)
    expect_error(c.get("/v1/audit?project=toks"), 404, "not_found")
    r = ADMIN.get("/v1/audit?limit=1000")
    expect(len({e["projectSlug"] for e in r.json()["entries"]}) > 2, r)


@test
def rate_limit():
    with Hee(conf={"api": {"rate_limit": "2", "rate_burst": "3"}}) as h:
        c = h.new_project("rl")
        adm = h.admin()
        # the admin token has spent some of its own bucket; the project token is fresh
        got = [c.get("/v1/edge/domains").status for _ in range(6)]
        expect(got[:3] == [200, 200, 200] and 429 in got[3:], got)
        r = c.get("/v1/edge/domains")
        expect_error(r, 429, "rate_limited")
        expect(int(r.headers["retry-after"]) >= 1, r.headers)
        # resolve is exempt: it sits on every upstream request
        expect(all(c.get("/v1/edge/resolve?hostname=x.example.com").status == 404 for _ in range(10)))
        time.sleep(1.1)
        expect(c.get("/v1/edge/domains").status == 200)
        expect(adm.get("/v1/projects").status in (200, 429))


def teardown():
    H.stop()
    H.cleanup()


if __name__ == "__main__":
    run(teardown=teardown)
