"""Tenants stay apart: two projects trying to read, change or take each
other's domains get 404/403/409 and change nothing; concurrent registrations
of one hostname from two projects have exactly one winner; an operator's
rebind moves a domain and both projects hear about it."""
import json
import threading

from heetest import Hee, expect, expect_error, run, test

H = Hee()
ADMIN = H.admin()
A = H.new_project("tenant-a")
B = H.new_project("tenant-b")


def snapshot():
    """Everything a cross-tenant attempt could have changed."""
    return (H.sql("SELECT id, hostname, project_id, state, verified, challenge, metadata, sequence, removed_at, "
                  "updated_at FROM domains ORDER BY id"),
            H.sql("SELECT count(*) FROM events")[0][0],
            H.sql("SELECT count(*) FROM audit")[0][0])


@test
def cannot_read_change_or_take_anothers_domain():
    r = A.post("/v1/edge/domains", {"hostname": "private.tenant-a.com", "metadata": {"secret": "a-only"}})
    expect(r.status == 201, r)
    before = snapshot()
    host = "private.tenant-a.com"
    expect_error(B.get("/v1/edge/domains/" + host), 404, "not_found")
    expect_error(B.get("/v1/edge/domains/PRIVATE.tenant-a.com."), 404, "not_found")
    expect_error(B.get("/v1/edge/resolve?hostname=" + host), 404, "not_found")
    expect_error(B.patch("/v1/edge/domains/" + host, {"metadata": {"secret": "b"}}), 404, "not_found")
    expect_error(B.delete("/v1/edge/domains/" + host), 404, "not_found")
    expect_error(B.post("/v1/edge/domains", {"hostname": host}), 409, "HostnameConflict")
    expect_error(B.post("/v1/edge/domains", {"hostname": host, "projectSlug": "tenant-a"}), 403, "forbidden")
    expect_error(B.post("/v1/edge/domains", {"hostname": "x.tenant-b.com", "projectSlug": "tenant-a"}), 403,
                 "forbidden")
    # moving a domain is an operator's act; B "claiming" it into its own
    # project is just a write to a domain it cannot see
    expect_error(A.patch("/v1/edge/domains/" + host, {"projectSlug": "tenant-b"}), 403, "forbidden")
    expect_error(B.patch("/v1/edge/domains/" + host, {"projectSlug": "tenant-b"}), 404, "not_found")
    expect_error(B.get("/v1/edge/domains?project=tenant-a"), 404, "not_found")
    expect_error(B.get("/v1/audit?project=tenant-a"), 404, "not_found")
    expect_error(B.get("/v1/usage?project=tenant-a"), 404, "not_found")
    r = B.get("/v1/edge/domains?includeRemoved=true")
    expect(r.status == 200 and r.json()["domains"] == [], r)
    expect(b"a-only" not in r.body)
    r = B.get("/v1/audit?limit=1000")
    expect(all(e["projectSlug"] == "tenant-b" for e in r.json()["entries"]), r)
    expect(host.encode() not in r.body)
    expect(snapshot() == before, "a cross-tenant attempt changed something")
    # A still has it, unchanged
    r = A.get("/v1/edge/resolve?hostname=" + host)
    expect(r.status == 200 and r.json()["metadata"] == {"secret": "a-only"}, r)


@test
def project_tokens_cannot_manage_projects_or_tokens():
    for c in (A, B):
        expect_error(c.get("/v1/projects"), 403, "forbidden")
        expect_error(c.get("/v1/projects/tenant-a"), 403, "forbidden")
        expect_error(c.patch("/v1/projects/tenant-a", {"maxDomains": 1000}), 403, "forbidden")
        expect_error(c.delete("/v1/projects/tenant-b"), 403, "forbidden")
        expect_error(c.get("/v1/tokens"), 403, "forbidden")
    tid = ADMIN.get("/v1/tokens?project=tenant-a").json()["tokens"][0]["id"]
    expect_error(B.delete("/v1/tokens/" + tid), 403, "forbidden")


@test
def concurrent_registrations_have_one_winner():
    hosts = ["race%d.example.net" % i for i in range(25)]
    results = {h: [] for h in hosts}
    barrier = threading.Barrier(2)

    def worker(client, tag):
        c = client.with_token(client.token)  # own connection per thread
        barrier.wait()
        for h in hosts:
            r = c.post("/v1/edge/domains", {"hostname": h, "metadata": {"by": tag}})
            results[h].append((tag, r.status, r.error_code))

    ts = [threading.Thread(target=worker, args=(A, "a")), threading.Thread(target=worker, args=(B, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for h in hosts:
        statuses = sorted(s for _, s, _ in results[h])
        expect(statuses == [201, 409], (h, results[h]))
        winner = [tag for tag, s, _ in results[h] if s == 201][0]
        rows = H.sql("SELECT p.slug, d.metadata FROM domains d JOIN projects p ON p.id = d.project_id "
                     "WHERE d.hostname = ? AND d.removed_at IS NULL", (h,))
        expect(len(rows) == 1 and rows[0][0] == "tenant-" + winner, (h, rows))
        expect(json.loads(rows[0][1]) == {"by": winner}, rows)
        loser = B if winner == "a" else A
        expect_error(loser.get("/v1/edge/domains/" + h), 404, "not_found")


@test
def operator_rebind_moves_the_domain():
    host = "moving.example.org"
    r = A.post("/v1/edge/domains", {"hostname": host, "metadata": {"tenant": "a"}})
    expect(r.status == 201, r)
    old = r.json()["domain"]
    # project tokens cannot; operators can, with fresh metadata
    r = ADMIN.patch("/v1/edge/domains/" + host, {"projectSlug": "tenant-b", "metadata": {"tenant": "b"}})
    expect(r.status == 200, r)
    new = r.json()["domain"]
    expect(new["projectSlug"] == "tenant-b" and new["metadata"] == {"tenant": "b"}, new)
    expect(new["ownershipChallenge"]["value"] != old["ownershipChallenge"]["value"], new)
    expect(new["state"] == old["state"] and new["verified"] == old["verified"], new)
    # resolve follows the new binding at once
    expect_error(A.get("/v1/edge/resolve?hostname=" + host), 404, "not_found")
    r = B.get("/v1/edge/resolve?hostname=" + host)
    expect(r.status == 200 and r.json()["projectSlug"] == "tenant-b" and r.json()["metadata"] == {"tenant": "b"}, r)
    # A sees its own history, removed; B sees the live one
    r = A.get("/v1/edge/domains/" + host)
    expect(r.status == 200 and r.json()["domain"]["removedAt"] and r.json()["domain"]["projectSlug"] == "tenant-a", r)
    expect(b'"tenant-b"' not in r.body)
    expect(B.get("/v1/edge/domains/" + host).json()["domain"]["removedAt"] is None)
    # both projects' events record it, and neither names the other project
    rows = H.sql("SELECT p.slug, e.type, e.payload FROM events e JOIN projects p ON p.id = e.project_id "
                 "JOIN domains d ON d.id = e.domain_id WHERE d.hostname = ? ORDER BY e.id", (host,))
    expect([(s, t) for s, t, _ in rows] == [("tenant-a", "domain.created"), ("tenant-a", "domain.deleted"),
                                            ("tenant-b", "domain.created")], rows)
    for slug, typ, payload in rows[1:]:
        data = json.loads(payload)["data"]
        expect(data["reason"] == "rebind" and data["domain"]["projectSlug"] == slug, data)
        other = "tenant-b" if slug == "tenant-a" else "tenant-a"
        expect(other not in payload, payload)
    expect('"tenant": "a"' not in rows[2][2] and '"tenant":"a"' not in rows[2][2], "old metadata leaked")
    acts = H.sql("SELECT p.slug, a.action, a.detail FROM audit a JOIN projects p ON p.id = a.project_id "
                 "WHERE a.target = ? AND a.action = 'domain.rebind' ORDER BY a.id", (host,))
    expect([(s, json.loads(d)["direction"]) for s, _, d in acts] == [("tenant-a", "out"), ("tenant-b", "in")], acts)
    # without metadata the moved domain starts with {}
    r = ADMIN.patch("/v1/edge/domains/" + host, {"projectSlug": "tenant-a"})
    expect(r.status == 200 and r.json()["domain"]["metadata"] == {} and r.json()["domain"]["projectSlug"] ==
           "tenant-a", r)
    # same project: a no-op, not a rebind
    n = H.sql("SELECT count(*) FROM events")[0][0]
    r = ADMIN.patch("/v1/edge/domains/" + host, {"projectSlug": "tenant-a"})
    expect(r.status == 200 and H.sql("SELECT count(*) FROM events")[0][0] == n, r)
    expect_error(ADMIN.patch("/v1/edge/domains/" + host, {"projectSlug": "nope"}), 404, "not_found")


@test
def rebind_respects_the_target_quota():
    small = H.new_project("tenant-small", maxDomains=1)
    expect(small.post("/v1/edge/domains", {"hostname": "only.example.org"}).status == 201)
    A.post("/v1/edge/domains", {"hostname": "wants-move.example.org"})
    before = snapshot()
    r = ADMIN.patch("/v1/edge/domains/wants-move.example.org", {"projectSlug": "tenant-small"})
    expect_error(r, 402, "QuotaExceeded")
    expect(snapshot() == before)


@test
def operator_registers_for_a_project():
    r = ADMIN.post("/v1/edge/domains", {"hostname": "by-op.example.org", "projectSlug": "tenant-b"})
    expect(r.status == 201 and r.json()["domain"]["projectSlug"] == "tenant-b", r)
    expect_error(ADMIN.post("/v1/edge/domains", {"hostname": "by-op2.example.org"}), 400, "invalid")
    expect_error(ADMIN.post("/v1/edge/domains", {"hostname": "by-op2.example.org", "projectSlug": "zzz"}), 404,
                 "not_found")
    r = ADMIN.get("/v1/edge/domains?project=tenant-b&limit=1000")
    expect(all(d["projectSlug"] == "tenant-b" for d in r.json()["domains"]), r)
    r = ADMIN.get("/v1/edge/domains?limit=1000")
    expect({d["projectSlug"] for d in r.json()["domains"]} >= {"tenant-a", "tenant-b"}, r)


def teardown():
    H.stop()
    H.cleanup()


if __name__ == "__main__":
    run(teardown=teardown)
