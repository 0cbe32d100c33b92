"""kill -9 during a burst of registrations: after a restart every
acknowledged domain is there, nothing is half-written (each domain has its
domain.created event and audit row, counters agree) and SQLite's
integrity_check passes."""
import json
import signal
import threading
import time

from heetest import Hee, expect, run, test

ROUNDS = 3
THREADS = 4


def burst(h, client, prefix, stop, acked, attempted, errors):
    try:
        _burst(client, prefix, stop, acked, attempted)
    except Exception as e:
        errors.append(repr(e))


def _burst(client, prefix, stop, acked, attempted):
    c = client.with_token(client.token)
    i = 0
    while not stop.is_set():
        host = "%s-%d.crash.example.com" % (prefix, i)
        i += 1
        attempted.append(host)
        try:
            r = c.post("/v1/edge/domains", {"hostname": host, "metadata": {"i": i}})
        except Exception:
            return  # the daemon died under us: this one is unacknowledged
        if r.status == 201:
            acked.append(host)
        elif r.status != 409:
            raise AssertionError("unexpected %r" % r)


def check_consistent(h, acked):
    rows = h.sql("PRAGMA integrity_check")
    expect(rows == [("ok",)], rows)
    expect(h.sql("PRAGMA foreign_key_check") == [], "foreign keys broken")
    c = h.admin()
    active = {r[0] for r in h.sql("SELECT hostname FROM domains WHERE removed_at IS NULL")}
    missing = [x for x in acked if x not in active]
    expect(not missing, "acknowledged but lost: %r" % missing[:5])
    for host in acked[:: max(1, len(acked) // 20)]:
        r = c.get("/v1/edge/domains/" + host)
        expect(r.status == 200 and r.json()["domain"]["hostname"] == host, r)
    # every domain row has its event and audit row; every event its domain
    orphans = h.sql("SELECT d.hostname FROM domains d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE "
                    "e.domain_id = d.id AND e.type = 'domain.created')")
    expect(orphans == [], "domains without domain.created: %r" % orphans[:5])
    orphans = h.sql("SELECT d.hostname FROM domains d WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE "
                    "a.target = d.hostname AND a.action = 'domain.create')")
    expect(orphans == [], "domains without audit: %r" % orphans[:5])
    expect(h.sql("SELECT count(*) FROM events e LEFT JOIN domains d ON d.id = e.domain_id WHERE d.id IS NULL")
           == [(0,)], "events without domains")
    for pid, counted, stored in h.sql("SELECT p.id, (SELECT count(*) FROM domains d WHERE d.project_id = p.id "
                                      "AND d.removed_at IS NULL), p.active_domains FROM projects p"):
        expect(counted == stored, "project %d: active_domains %d but %d rows" % (pid, stored, counted))
    for (payload,) in h.sql("SELECT payload FROM events"):
        json.loads(payload)


@test
def kill9_during_registration_burst():
    h = Hee(conf={"api": {"rate_limit": "0"}})
    try:
        clients = [h.new_project("crash%d" % i, maxDomains=1000000) for i in range(2)]
        acked_all = []
        for rnd in range(ROUNDS):
            stop = threading.Event()
            acked, attempted, errors = [], [], []
            ts = [threading.Thread(target=burst, args=(h, clients[t % 2], "r%dt%d" % (rnd, t), stop, acked,
                                                       attempted, errors)) for t in range(THREADS)]
            for t in ts:
                t.start()
            time.sleep(1.0 + 0.3 * rnd)
            h.kill(signal.SIGKILL)
            stop.set()
            for t in ts:
                t.join(30)
            expect(not errors, errors)
            expect(len(acked) > 20, "burst too small to mean anything: %d" % len(acked))
            acked_all += acked
            h.start()
            check_consistent(h, acked_all)
            print("round %d: %d acknowledged, %d attempted" % (rnd, len(acked), len(attempted)), flush=True)
        h.stop()
    finally:
        if h.alive():
            h.kill()
    h.cleanup()


if __name__ == "__main__":
    run()
