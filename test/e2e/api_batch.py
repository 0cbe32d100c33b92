"""Registrations committed in batches, and resolve on the read-lock pin:
one refusal in a batch does not cost the others their 201; every reply comes
after the commit; resolve sees the daemon's commits at once and the CLI's
within the resolve pin's 10 ms; and a clean stop after resolves still
truncates the WAL."""
import os
import re
import socket
import time

from heetest import Hee, expect, recv_to_eof, run, test

H = Hee(conf={"api": {"rate_limit": "0"}})


def reg(host, slug=None):
    return ('{"hostname":"%s","metadata":{"n":1}%s}'
            % (host, ',"projectSlug":"%s"' % slug if slug else ""))


@test
def refusals_in_a_batch_leave_the_others_committed():
    small = H.new_project("small", maxDomains=3)
    big = H.new_project("big", maxDomains=1000)
    for i in range(2):
        expect(small.post("/v1/edge/domains", {"hostname": "pre%d.small.example.com" % i}).status == 201)
    expect(big.post("/v1/edge/domains", {"hostname": "taken.example.com"}).status == 201)
    # (token, body, expected status or None when decided below)
    reqs = [(big.token, reg("b%d.big.example.com" % i), 201) for i in range(12)]
    reqs += [(big.token, reg("twice.example.com"), None)] * 2          # one of the two wins
    reqs.append((small.token, reg("taken.example.com"), 409))          # another project's
    reqs.append((big.token, reg("bad_host!.example.com"), 400))        # refused before the batch
    reqs.append((big.token, reg("x.big.example.com", "small"), 403))
    reqs += [(small.token, reg("q%d.small.example.com" % i), None) for i in range(3)]  # room for one
    replies = burst_mixed([(t, b) for t, b, _ in reqs])
    for i, ((_, body, want), (status, text)) in enumerate(zip(reqs, replies)):
        if want is not None:
            expect(status == want, "request %d %s: wanted %d, got %d %r" % (i, body, want, status, text))
    twice = sorted(st for (_, body, _), (st, _) in zip(reqs, replies) if "twice" in body)
    expect(twice == [201, 409], twice)
    quota = sorted(st for (_, body, _), (st, _) in zip(reqs, replies) if '"q' in body)
    expect(quota == [201, 402, 402], quota)
    # every 201 is in the store with its event and audit row; counters agree
    active = {r[0] for r in H.sql("SELECT hostname FROM domains WHERE removed_at IS NULL")}
    for (_, body, _), (status, _) in zip(reqs, replies):
        host = re.search(r'"hostname":"([^"]+)"', body).group(1)
        expect(status != 201 or host in active, "acknowledged but missing: %s" % host)
    expect(len(active) == 2 + 1 + 12 + 1 + 1, sorted(active))  # pre, taken, b*, twice, one q
    orphans = H.sql("SELECT d.hostname FROM domains d WHERE NOT EXISTS (SELECT 1 FROM events e "
                    "WHERE e.domain_id = d.id AND e.type = 'domain.created') OR NOT EXISTS "
                    "(SELECT 1 FROM audit a WHERE a.target = d.hostname AND a.action = 'domain.create')")
    expect(orphans == [], orphans)
    for pid, counted, stored in H.sql("SELECT p.id, (SELECT count(*) FROM domains d WHERE d.project_id = p.id "
                                      "AND d.removed_at IS NULL), p.active_domains FROM projects p"):
        expect(counted == stored, "project %d: active_domains %d but %d rows" % (pid, stored, counted))


def burst_mixed(pairs):
    socks = []
    for token, body in pairs:
        s = socket.create_connection(("127.0.0.1", H.api_port), timeout=30)
        req = ("POST /v1/edge/domains HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (token, len(body), body))
        socks.append((s, req.encode()))
    for s, req in socks:
        s.sendall(req)
    out = []
    for s, _ in socks:
        data = recv_to_eof(s)
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        out.append((int(head.split()[1]), body))
    return out


@test
def a_burst_is_committed_in_few_batches():
    c = H.new_project("burst", maxDomains=1000)
    replies = burst_mixed([(c.token, reg("burst%d.example.com" % i)) for i in range(40)])
    expect([s for s, _ in replies] == [201] * 40, replies[:3])


@test
def resolve_sees_every_commit_at_once():
    c = H.new_project("res", scopes=("connections:read", "connections:write"), maxDomains=100)
    for i in range(20):  # lookups hold the pin
        expect(c.get("/v1/edge/resolve?hostname=nothing.example.com").status == 404)
    expect(c.post("/v1/edge/domains", {"hostname": "now.example.com", "metadata": {"v": 1}}).status == 201)
    r = c.get("/v1/edge/resolve?hostname=now.example.com")
    expect(r.status == 200 and r.json()["metadata"] == {"v": 1}, r)
    expect(c.patch("/v1/edge/domains/now.example.com", {"metadata": {"v": 2}}).status == 200)
    expect(c.get("/v1/edge/resolve?hostname=now.example.com").json()["metadata"] == {"v": 2})
    expect(c.delete("/v1/edge/domains/now.example.com").status == 200)
    expect(c.get("/v1/edge/resolve?hostname=now.example.com").status == 404)
    # another process's commit: the CLI's
    H.cli("domain", "add", "cli.example.com", "--project", "res", "--metadata", '{"by":"cli"}')
    r = c.get("/v1/edge/resolve?hostname=cli.example.com")
    expect(r.status == 200 and r.json()["metadata"] == {"by": "cli"}, r)


@test
def clean_stop_after_resolves_truncates_the_wal():
    c = H.new_project("stop", scopes=("connections:read", "connections:write"), maxDomains=10)
    expect(c.post("/v1/edge/domains", {"hostname": "stop.example.com"}).status == 201)
    for _ in range(50):
        expect(c.get("/v1/edge/resolve?hostname=stop.example.com").status == 200)
    t0 = time.time()
    H.stop()
    took = time.time() - t0
    expect(took < 4, "stop took %.1f s (a checkpoint waiting on a held read lock?)" % took)
    wal = H.db_path + "-wal"
    left = os.path.getsize(wal) if os.path.exists(wal) else 0
    expect(left == 0, "WAL left at %d bytes" % left)
    m = re.findall(r"api.registration_batches batches=(\d+) registrations=(\d+) largest=(\d+)", H.stderr_text())
    expect(m, "no batch summary in the log")
    batches, regs, largest = (int(x) for x in m[-1])
    print("batches=%d registrations=%d largest=%d" % (batches, regs, largest), flush=True)
    expect(largest >= 2, "the bursts were never batched")
    H.start()
    expect(c.get("/v1/edge/resolve?hostname=stop.example.com").status == 200)


def teardown():
    H.stop()
    H.cleanup()


if __name__ == "__main__":
    run(teardown=teardown)
