#!/usr/bin/env python3
"""hooks_crash: kill -9 of hee between a state change and its delivery, while
a delivery is on the wire, and between a delivery's 2xx and the batched
commit of its record. After a restart every event is delivered; a duplicate
only ever repeats the same webhook-id (at-least-once). And with the store's
write lock held by another connection: the background loop keeps running
(its writes do not wait for the lock) and the record commits once it is free."""

import signal
import sqlite3
import threading
import time

from hooks_common import (Hee, Receiver, add_domain, check_domain_order, create_endpoint, del_domain, expect,
                          hook_conf, pending, wait_until)
from heetest import run, test
from receiver import _Handler

CD = ["domain.created", "domain.deleted"]


def ids_by_status(deliveries):
    ok = {}
    for d in deliveries:
        if d.status == 200:
            ok[d.msg_id] = ok.get(d.msg_id, 0) + 1
    return ok


@test
def kill_between_change_and_delivery():
    h = Hee(hook_conf(retry_schedule="200ms"))
    try:
        p = h.new_project("acme")
        with Receiver([]) as r:
            ep = create_endpoint(p, r.url, CD)
            r.set_secrets([ep["secret"]])
            r.go_down()
            hosts = ["k%d.example.com" % i for i in range(5)]
            for x in hosts:
                add_domain(p, x)
            del_domain(p, hosts[0])
            # Committed, not delivered: the API answered, the receiver is down.
            events = {row[0] for row in h.sql("SELECT public_id FROM events")}
            expect(len(events) == 6, "six events committed")
            h.kill(signal.SIGKILL)
            expect(pending(h) == 6, "all six still pending after the crash")
            r.come_back()
            h.start()
            got = r.wait_for(lambda ev: ev if set(ids_by_status(ev)) >= events else None, timeout=30)
            expect(all(d.verified for d in got), "signed after restart")
            expect({d.msg_id for d in got} == events, "nothing but those events")
            check_domain_order(got)
            wait_until(lambda: pending(h) == 0, what="outbox drained")
        h.stop()
    finally:
        h.cleanup()


@test
def kill_mid_request_resends_same_webhook_id():
    h = Hee(hook_conf(retry_schedule="200ms", timeout="30s"))
    try:
        p = h.new_project("acme")
        with Receiver([]) as r:
            ep = create_endpoint(p, r.url, CD)
            r.set_secrets([ep["secret"]])
            r.set_delay(3.0)
            add_domain(p, "mid.example.com")
            add_domain(p, "mid2.example.com")
            first = r.wait_count(1, timeout=10)[0]
            # The request is on the wire (the receiver is sleeping on it).
            h.kill(signal.SIGKILL)
            r.set_delay(0)
            h.start()
            events = {row[0] for row in h.sql("SELECT public_id FROM events")}

            # The receiver recorded the interrupted request as answered 200
            # although hee never read that answer, so "every event has a 200"
            # can hold before the re-send arrives: wait for the re-send itself.
            def resent_and_all_delivered(ev):
                resent = sum(1 for d in ev if d.msg_id == first.msg_id) >= 2
                return ev if resent and set(ids_by_status(ev)) >= events else None

            got = r.wait_for(resent_and_all_delivered, timeout=30)
            again = [d for d in got if d.msg_id == first.msg_id]
            expect(len(again) >= 2, "the interrupted delivery was sent again: %r" % again)
            expect(all(d.body == first.body for d in again), "same payload bytes on the re-send")
            expect(len({d.msg_id for d in got}) == len(events), "duplicates only repeat a webhook-id")
            expect(all(d.verified for d in got), "all signed")
            wait_until(lambda: pending(h) == 0, what="outbox drained")
        h.stop()
    finally:
        h.cleanup()


# ---- a kill -9 between a 2xx and its record ----
#
# An answered delivery frees its connection at once, but its attempt row and
# its 'succeeded' are committed by a batched flush (20 ms later when no
# delivery of its domain waits for it). The window is hit on purpose: the
# receiver says when its 2xx is on the socket, the test then waits until
# hee has read it (its delivered-attempts counter, bumped before the flush
# is scheduled) and kills at once. In the "held" round the test also holds
# the database's write lock (as another process — the CLI — may) from before
# the answer until after the kill, so the flush cannot commit: the window is
# hit every time. In the "natural" round nothing widens it; a kill that came
# after the commit must then find the delivery done, never sent again.


class _AnswerHandler(_Handler):
    def _handle(self):
        super()._handle()
        self.server.receiver._answered()

    do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle


class SignallingReceiver(Receiver):
    """test/lib's receiver (its signature checks, its record) plus two
    moments: before_answer() runs in the handler thread once the request is
    recorded and before the answer is written; wait_answered() returns when
    a 2xx has been written to the socket (its webhook-id and time)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.before_answer = None
        self._local = threading.local()
        self._answers = []
        self._answer_cond = threading.Condition()

    def _listen(self):
        super()._listen()
        self._server.RequestHandlerClass = _AnswerHandler

    def _on_request(self, method, path, raw, headers, body):
        item, delay = super()._on_request(method, path, raw, headers, body)
        self._local.answer = (headers.get("webhook-id"), item)
        hook, self.before_answer = self.before_answer, None
        if hook:
            hook()
        return item, delay

    def _answered(self):
        msg_id, item = getattr(self._local, "answer", (None, None))
        if isinstance(item, dict) and 200 <= item["status"] < 300:
            with self._answer_cond:
                self._answers.append((msg_id, time.monotonic()))
                self._answer_cond.notify_all()

    def wait_answered(self, timeout=10.0):
        with self._answer_cond:
            if not self._answer_cond.wait_for(lambda: self._answers, timeout):
                raise AssertionError("no 2xx answered in %ss: %r" % (timeout, self.events()))
            return self._answers[0]


def write_locker(h, lock):
    """A receiver hook that takes the store's write lock from another
    connection (as the CLI may) just before the 2xx goes out; the
    connection is appended to lock, for the test to release."""
    def hold_write_lock():
        db = sqlite3.connect(h.db_path, timeout=5, isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")
        lock.append(db)
    return hold_write_lock


def delivered_attempts(client):
    """hee_webhook_attempts_total{result="delivered"}: counted when the 2xx is
    read, before its record is written."""
    r = client.get("/metrics")
    expect(r.status == 200, "metrics: %r" % r)
    for line in r.text.splitlines():
        if line.startswith('hee_webhook_attempts_total{result="delivered"}'):
            return int(float(line.split()[-1]))
    return 0


def delivery_record(h, msg_id):
    """(status, attempts, attempt rows, attempt rows with a 2xx) of the one
    delivery of event msg_id."""
    rows = h.sql("SELECT d.status, d.attempts, "
                 "(SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id), "
                 "(SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id AND a.status_code BETWEEN 200 AND 299) "
                 "FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.public_id = ?", (msg_id,))
    expect(len(rows) == 1, "one delivery for %s: %r" % (msg_id, rows))
    return tuple(rows[0])


UNRECORDED = ("pending", 0, 0, 0)
RECORDED = ("succeeded", 1, 1, 1)


def background_loop_runs(p, ep, r):
    """While another connection holds the write lock and the delivery record
    waits for it: the background thread — the one that flushes webhook
    records — still sends. A test send is made by that thread's loop (the
    API on the control thread only relays it) and reaches the receiver only
    if the loop is not asleep in SQLite's busy handler (which it was, for up
    to 5 s, before its writes stopped waiting for the lock)."""
    time.sleep(0.3)  # the flush (20 ms after the answer) has met the lock
    t0 = time.monotonic()
    t = p.post("/v1/webhook-endpoints/%s/test" % ep["id"], {"type": "ssl.issued"})
    took = time.monotonic() - t0
    expect(t.status == 200, "test send: %r" % t)
    res = t.json()["test"]
    expect(res["delivered"] is True, "test send delivered: %r" % res)
    expect(any(d.msg_id == res["eventId"] for d in r.events()), "the receiver got the test send")
    expect(took < 2.0, "the background loop answered a test send in %.2f s with the lock held" % took)
    print("     lock held: test send through the background loop took %.0f ms" % (took * 1000), flush=True)
    return res["eventId"]


def delivered(got, test_ids):
    """Deliveries, test sends left out."""
    return [d for d in got if d.msg_id not in test_ids]


def kill_after_2xx(held):
    """One round; returns True when the kill landed before the record."""
    h = Hee(hook_conf(retry_schedule="200ms"))
    lock = []
    try:
        p = h.new_project("acme")
        metrics = h.client()
        expect(delivered_attempts(metrics) == 0, "nothing delivered yet")
        with SignallingReceiver([]) as r:
            ep = create_endpoint(p, r.url, ["domain.created"])
            r.set_secrets([ep["secret"]])
            if held:
                r.before_answer = write_locker(h, lock)
            add_domain(p, "first.example.com")
            first_id, answered_at = r.wait_answered()
            # The 2xx is on the socket; the kill waits only for hee to have read it.
            deadline = time.monotonic() + 10
            while delivered_attempts(metrics) < 1:
                expect(time.monotonic() < deadline, "hee never read the 2xx")
            tests = {background_loop_runs(p, ep, r)} if held else set()
            if held:
                expect(delivery_record(h, first_id) == UNRECORDED, "lock held: not recorded yet")
            killed_at = time.monotonic()
            h.kill(signal.SIGKILL)
            for db in lock:
                db.rollback()
                db.close()
            events = {row[0] for row in h.sql("SELECT public_id FROM events")}
            expect(events == {first_id}, "the one event committed: %r" % events)
            after_kill = delivery_record(h, first_id)
            # Never 'succeeded' without its attempt (one transaction), never a
            # half-written record.
            expect(after_kill in (UNRECORDED, RECORDED), "after the kill: %r" % (after_kill,))
            hit = after_kill == UNRECORDED
            if held:
                expect(hit, "write lock held: the record cannot have been committed: %r" % (after_kill,))
            print("     %s round: kill -9 sent %.1f ms after the 2xx was written (and read); record on disk "
                  "before the kill: %s" % ("held" if held else "natural", (killed_at - answered_at) * 1000,
                                           "no (window hit)" if hit else "yes"), flush=True)

            h.start()
            add_domain(p, "barrier.example.com")
            barrier_id = h.sql("SELECT public_id FROM events WHERE public_id != ?", (first_id,))[0][0]
            want_first = 2 if hit else 1

            def settled(ev):
                ok = [d for d in ev if d.status == 200]
                n_first = sum(1 for d in ok if d.msg_id == first_id)
                return ev if n_first >= want_first and any(d.msg_id == barrier_id for d in ok) else None

            r.wait_for(settled, timeout=15)
            wait_until(lambda: pending(h) == 0, what="outbox drained")
            got = delivered(r.events(), tests)
            copies = [d for d in got if d.msg_id == first_id]
            # At-least-once, no more: re-sent only when its record was lost.
            expect(len(copies) == want_first, "%s sent %d times, want %d: %r"
                   % (first_id, len(copies), want_first, got))
            expect(all(d.body == copies[0].body and d.event_id == first_id for d in copies),
                   "a re-send carries the same webhook-id and payload bytes")
            expect(all(d.verified for d in got), "all signed: %r" % got)
            expect({d.msg_id for d in got} == {first_id, barrier_id}, "nothing else sent: %r" % got)
            # Marked delivered exactly once; the pre-crash attempt of a hit
            # left no row (its record was what the crash lost).
            expect(delivery_record(h, first_id) == RECORDED, "first: %r" % (delivery_record(h, first_id),))
            expect(delivery_record(h, barrier_id) == RECORDED, "barrier: %r" % (delivery_record(h, barrier_id),))
        h.stop()
        return hit
    finally:
        for db in lock:
            db.close()
        h.cleanup()


@test
def record_waits_for_lock_then_commits():
    """The write lock is held from before a 2xx until well after it: the
    background loop keeps working meanwhile (a test send goes through it),
    and once the lock is free the batched record commits — the delivery is
    marked once and never sent again."""
    h = Hee(hook_conf(retry_schedule="200ms"))
    lock = []
    try:
        p = h.new_project("acme")
        metrics = h.client()
        with SignallingReceiver([]) as r:
            ep = create_endpoint(p, r.url, ["domain.created"])
            r.set_secrets([ep["secret"]])
            r.before_answer = write_locker(h, lock)
            add_domain(p, "held.example.com")
            first_id, _ = r.wait_answered()
            wait_until(lambda: delivered_attempts(metrics) >= 1, what="hee read the 2xx")
            tests = {background_loop_runs(p, ep, r)}
            # The flush retries, backing off; past ~0.3 s the background loop
            # says so (a line it can only write while it runs).
            wait_until(lambda: "hook.store_busy" in h.stderr_text(), timeout=3, what="hook.store_busy logged")
            expect(delivery_record(h, first_id) == UNRECORDED, "lock held: not recorded yet")
            for db in lock:
                db.rollback()
                db.close()
            lock.clear()
            wait_until(lambda: delivery_record(h, first_id) == RECORDED, timeout=5, what="record committed")
            add_domain(p, "after.example.com")
            wait_until(lambda: pending(h) == 0, what="outbox drained")
            got = delivered(r.events(), tests)
            expect(len([d for d in got if d.msg_id == first_id]) == 1, "sent once: %r" % got)
            expect(len(got) == 2 and all(d.verified and d.status == 200 for d in got), "both delivered: %r" % got)
            expect("hook.record_failed" not in h.stderr_text(), "no record was dropped")
        h.stop()
    finally:
        for db in lock:
            db.close()
        h.cleanup()


@test
def kill_between_2xx_and_record_held_open():
    kill_after_2xx(held=True)


@test
def kill_between_2xx_and_record():
    kill_after_2xx(held=False)


if __name__ == "__main__":
    run()
