#!/usr/bin/env python3
"""hooks_delivery: webhooks from real state changes to test/lib/receiver.py —
signed payloads equal to the stored event, filters, a receiver that is down
for several retry steps (everything arrives, in per-domain order), 410
disabling and the replay on re-enable, dead letters and their replay
(redeliver, recover), continuous failure disabling, the attempt log."""

import time

from hooks_common import (Hee, Receiver, add_domain, attempts, check_domain_order, create_endpoint, del_domain,
                          endpoint, expect, hook_conf, wait_until)
from heetest import run, test

H = None
P = None
CD = ["domain.created", "domain.deleted"]


def fresh_daemon(**webhooks):
    h = Hee(hook_conf(**webhooks))
    return h, h.new_project("acme")


@test
def real_flow_events_signed_and_filtered():
    with Receiver([]) as all_r, Receiver([]) as del_r:
        ep_all = create_endpoint(P, all_r.url)
        ep_del = create_endpoint(P, del_r.url, ["domain.deleted"])
        all_r.set_secrets([ep_all["secret"]])
        del_r.set_secrets([ep_del["secret"]])
        add_domain(P, "flow-a.example.com")
        add_domain(P, "flow-b.example.com")
        del_domain(P, "flow-a.example.com")
        got = all_r.wait_for(lambda ev: ev if len(ev) >= 3 else None)
        types = sorted(d.event_type for d in got)
        expect(types == ["domain.created", "domain.created", "domain.deleted"], repr(types))
        for d in got:
            expect(d.verified and d.hee_naive_ok, "signatures: %r" % d)
            expect(d.msg_id == d.event_id and d.event_id.startswith("evt_"), "webhook-id is the event id")
            expect(d.headers.get("content-type") == "application/json", repr(d.headers))
            expect(d.headers.get("x-hee-event-type") == d.event_type, repr(d.headers))
            stored = P.get("/v1/events/" + d.event_id)
            expect(stored.status == 200, repr(stored))
            # The bytes sent are the stored payload (what was signed).
            expect(stored.json()["event"] == d.json, "payload differs from the stored event")
            dl = [x for x in stored.json()["deliveries"] if x["endpointId"] == ep_all["id"]]
            expect(dl and dl[0]["status"] in ("succeeded", "pending"), repr(dl))
        check_domain_order(got)
        dd = del_r.wait_count(1)
        time.sleep(0.5)
        expect([d.event_type for d in del_r.events()] == ["domain.deleted"], "filter: %r" % del_r.events())
        expect(dd[0].json["data"]["domain"]["hostname"] == "flow-a.example.com", repr(dd[0].json))
        # The attempt log: time, status, latency, error, body.
        wait_until(lambda: len(attempts(P, ep_all["id"])) >= 3, what="3 attempts logged")
        a = attempts(P, ep_all["id"])[0]
        expect(a["statusCode"] == 200 and a["error"] is None and isinstance(a["latencyMs"], int)
               and a["at"].endswith("Z"), repr(a))
        for e in (ep_all, ep_del):
            P.delete("/v1/webhook-endpoints/" + e["id"])
    del_domain(P, "flow-b.example.com")


@test
def receiver_down_then_back_keeps_order():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, CD)
        r.set_secrets([ep["secret"]])
        r.go_down()
        hosts = ["down%d.example.com" % i for i in range(4)]
        for h in hosts:
            add_domain(P, h)
        for h in hosts:
            del_domain(P, h)
        # Several retry steps fail (connection refused), then it comes back.
        wait_until(lambda: sum(1 for a in attempts(P, ep["id"]) if a["statusCode"] is None) >= 3 * len(hosts),
                   timeout=20, what="three failed rounds")
        errs = {a["error"] for a in attempts(P, ep["id"])}
        expect(any("onnect" in (e or "") for e in errs), "connection errors logged: %r" % errs)
        r.come_back()
        got = r.wait_for(lambda ev: ev if sum(1 for d in ev if d.status == 200) >= 2 * len(hosts) else None,
                         timeout=30)
        done = check_domain_order(got)
        expect(len(done) == len(hosts) and all(v == [1, 2] for v in done.values()), "every event: %r" % done)
        expect(all(d.verified for d in got), "all signed")
        wait_until(lambda: endpoint(P, ep["id"])["failingSince"] is None, what="failing clock cleared")
        P.delete("/v1/webhook-endpoints/" + ep["id"])


@test
def gone_disables_and_reenable_replays_missed():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, CD)
        r.set_secrets([ep["secret"]])
        r.set_responses([410])
        add_domain(P, "gone.example.com")
        wait_until(lambda: endpoint(P, ep["id"])["disabled"], what="endpoint disabled by 410")
        e = endpoint(P, ep["id"])
        expect(e["disabledReason"] == "gone", repr(e))
        # Missed while disabled: nothing is sent.
        del_domain(P, "gone.example.com")
        add_domain(P, "gone2.example.com")
        time.sleep(1.0)
        expect(len(r.events()) == 1, "nothing sent while disabled: %r" % r.events())
        re = P.patch("/v1/webhook-endpoints/" + ep["id"], {"disabled": False})
        expect(re.status == 200 and re.json()["replayed"] == 3 and re.json()["endpoint"]["disabled"] is False,
               repr(re))
        got = r.wait_for(lambda ev: ev if sum(1 for d in ev if d.status == 200) >= 3 else None)
        ok = [d for d in got if d.status == 200]
        expect(sorted(d.event_type for d in ok) == ["domain.created", "domain.created", "domain.deleted"],
               repr(ok))
        check_domain_order(got)
        # Manual disable / enable.
        expect(P.patch("/v1/webhook-endpoints/" + ep["id"], {"disabled": True}).json()["endpoint"]["disabledReason"]
               == "manual", "manual reason")
        P.delete("/v1/webhook-endpoints/" + ep["id"])
    del_domain(P, "gone2.example.com")


@test
def retry_after_is_honoured():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, ["domain.created"])
        r.set_responses([{"status": 503, "headers": {"Retry-After": "2"}}])
        add_domain(P, "later.example.com")
        got = r.wait_count(2, timeout=15)
        expect(got[1].arrived - got[0].arrived >= 1.9, "retried after %.2fs" % (got[1].arrived - got[0].arrived))
        P.delete("/v1/webhook-endpoints/" + ep["id"])


@test
def redirects_are_failures():
    with Receiver([]) as r:
        ep = create_endpoint(P, r.url, ["domain.created"])
        r.set_responses([{"status": 302, "headers": {"Location": r.url + "/elsewhere"}}])
        add_domain(P, "redir.example.com")
        got = r.wait_for(lambda ev: ev if any(d.status == 200 for d in ev) else None)
        expect(all(d.path == "/webhook" for d in got), "the redirect is not followed")
        errs = [a["error"] for a in attempts(P, ep["id"]) if a["statusCode"] == 302]
        expect(errs and "redirect" in errs[0], repr(errs))
        P.delete("/v1/webhook-endpoints/" + ep["id"])


@test
def dead_letters_then_redeliver_and_recover():
    h, p = fresh_daemon(max_age="2s", retry_schedule="300ms")
    try:
        with Receiver([]) as r:
            ep = create_endpoint(p, r.url, ["domain.created"])
            r.set_secrets([ep["secret"]])
            r.set_default(500)
            t0 = time.time()
            add_domain(p, "dead1.example.com")
            add_domain(p, "dead2.example.com")

            def dead():
                x = p.get("/v1/webhook-endpoints/%s/dead-letters" % ep["id"]).json()["deadLetters"]
                return x if len(x) == 2 else None
            dls = wait_until(dead, timeout=15, what="two dead letters")
            expect(time.time() - t0 >= 1.9, "retried for the whole window")
            expect(all(d["status"] == "dead" and d["attempts"] >= 3 and d["lastStatusCode"] == 500
                       and d["lastError"] == "HTTP 500" for d in dls), repr(dls))
            n = len(r.events())
            r.set_default(200)
            # Replay one event to every subscribed endpoint…
            rd = p.post("/v1/events/%s/redeliver" % dls[0]["eventId"], {})
            expect(rd.status == 202 and rd.json()["queued"] == 1, repr(rd))
            r.wait_for(lambda ev: any(d.status == 200 and d.event_id == dls[0]["eventId"] for d in ev[n:]))
            # …and the other through recover {since}.
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - 5))
            rc = p.post("/v1/webhook-endpoints/%s/recover" % ep["id"], {"since": since})
            expect(rc.status == 202 and rc.json()["queued"] == 1, repr(rc))
            r.wait_for(lambda ev: any(d.status == 200 and d.event_id == dls[1]["eventId"] for d in ev[n:]))
            wait_until(lambda: not p.get("/v1/webhook-endpoints/%s/dead-letters" % ep["id"]).json()["deadLetters"],
                       what="dead letters replayed")
            delivered = [d for d in r.events() if d.status == 200]
            expect(all(d.verified for d in delivered), "replays are signed")
            expect(sorted(d.event_id for d in delivered) == sorted(x["eventId"] for x in dls),
                   "exactly the dead ones, once each")
            # Redeliver to one named endpoint even after success.
            rd = p.post("/v1/events/%s/redeliver" % dls[0]["eventId"], {"endpointId": ep["id"]})
            expect(rd.status == 202 and rd.json()["queued"] == 1, repr(rd))
            r.wait_for(lambda ev: sum(1 for d in ev if d.status == 200 and d.event_id == dls[0]["eventId"]) == 2)
        h.stop()
    finally:
        h.cleanup()


@test
def continuous_failure_disables_after_warning():
    h, p = fresh_daemon(disable_after="2s", retry_schedule="200ms")
    try:
        with Receiver([]) as r:
            ep = create_endpoint(p, r.url)
            r.set_default(500)
            add_domain(p, "failing.example.com")
            e = wait_until(lambda: (lambda x: x if x["disabled"] else None)(endpoint(p, ep["id"])), timeout=15,
                           what="disabled after failing")
            expect(e["disabledReason"] == "failing" and e["warnedAt"] is not None and e["failingSince"] is not None,
                   repr(e))
            text = h.stderr_text()
            expect("msg=hook.endpoint_failing endpoint=%s" % ep["id"] in text, "warning logged first")
            expect("msg=hook.endpoint_disabled endpoint=%s reason=failing" % ep["id"] in text, "disable logged")
            expect(text.index("hook.endpoint_failing") < text.index("hook.endpoint_disabled"), "warning first")
            n = len(r.events())
            time.sleep(0.8)
            expect(len(r.events()) == n, "no more attempts while disabled")
            r.set_default(200)
            re = p.patch("/v1/webhook-endpoints/" + ep["id"], {"disabled": False}).json()
            expect(re["replayed"] == 1 and re["endpoint"]["warnedAt"] is None, repr(re))
            r.wait_for(lambda ev: any(d.status == 200 for d in ev[n:]))
        h.stop()
    finally:
        h.cleanup()


@test
def metrics_count_attempts():
    text = H.client().get("/metrics").text
    expect('hee_webhook_attempts_total{result="delivered"}' in text, "delivered counter rendered")
    line = [ln for ln in text.splitlines() if ln.startswith('hee_webhook_attempts_total{result="delivered"}')][0]
    expect(int(float(line.split()[-1])) > 0, line)


def main():
    global H, P
    H = Hee(hook_conf())
    P = H.new_project("acme")

    def teardown():
        H.stop()
        H.cleanup()

    run(teardown=teardown)


if __name__ == "__main__":
    main()
