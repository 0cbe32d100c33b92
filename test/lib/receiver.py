#!/usr/bin/env python3
"""receiver.py: a scriptable webhook endpoint for Hee's end-to-end tests.

Pure standard library. It checks Hee's signatures with its OWN code
(hmac/hashlib/base64), never by calling Hee, so a signing bug cannot hide
behind a verifying bug with the same cause.

Both schemes Hee sends are checked on every delivery, with a 5-minute
timestamp window (tolerance=300):

  Standard Webhooks   webhook-id, webhook-timestamp,
                      webhook-signature: "v1,<b64>" entries separated by spaces
                      HMAC-SHA256(base64decode(secret after "whsec_"),
                                  f"{id}.{timestamp}.{body}")
  Hee scheme          X-Hee-Timestamp, X-Hee-Signature: sha256=<hex>
                      (+ X-Hee-Signature-Previous while a secret is rotated out)
                      HMAC-SHA256(the FULL secret string "whsec_..." as bytes,
                                  f"{timestamp}.{body}")

Usage:

    from receiver import Receiver
    with Receiver("whsec_...") as r:          # or Receiver([new, old])
        ... register r.url with Hee ...       # http://127.0.0.1:<port>/webhook
        r.set_responses([503, 503, 503, 200])  # then the default (200)
        d = r.wait_for(lambda ev: len(ev) >= 4, timeout=30)
        assert all(e.verified for e in r.events())

Scripting:
  set_responses(items)   consumed one per request, then set_default(item).
                         item: an int status; or a dict with keys status,
                         headers (dict), body (bytes/str), delay (seconds);
                         or "hangup" (drop the connection without answering).
                         e.g. [503]*3 + [200], [410], [{"status": 429,
                         "headers": {"Retry-After": "2"}}]
  set_delay(seconds)     delay before every response (on top of item delays).
  go_down()              close the listening socket AND every open connection
                         (so keep-alive reuse cannot sneak through): clients get
                         "connection refused".
  come_back()            listen again on the same port.
  set_secrets(list)      the secrets accepted from now on (first = current);
  rotate(new)            = set_secrets([new] + current secrets[:1]).
  require_signature=True answer 401 (without consuming the script) when either
                         scheme fails; the default records and answers anyway,
                         so tests assert on the recorded flags.

Each recorded Delivery has: index, method, path, headers (lower-case names),
raw_headers, body (bytes), json (or None), arrived (time.time()), status (what
we answered, None for a hangup), std_ok/std_reason, hee_ok/hee_reason,
hee_naive_ok (X-Hee-Signature alone verifies with the current secret, as the
documented ten-line verifier would), verified (std_ok and hee_ok),
event_id/event_type (from the JSON body), msg_id (webhook-id).

events() returns a snapshot list; wait_for(predicate, timeout) calls
predicate(events) on each new delivery and returns its first truthy result, or
raises TimeoutError listing what did arrive.

Self-test:  python3 test/lib/receiver.py --selftest
Manual use: python3 test/lib/receiver.py --serve --secret whsec_... [--port N]
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import socket
import sys
import threading
import time

PREFIX = "whsec_"
TOLERANCE = 300


# ---------------------------------------------------------------- signing --

def _std_key(secret):
    if not secret.startswith(PREFIX):
        raise ValueError("secret must start with whsec_")
    return base64.b64decode(secret[len(PREFIX):], validate=True)


def sign_std(secret, msg_id, timestamp, body):
    """Standard Webhooks v1 signature entry for one secret."""
    msg = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_std_key(secret), msg, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_hee(secret, timestamp, body):
    """Hee scheme: keyed by the full secret string, prefix included."""
    msg = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_headers(secrets, msg_id, timestamp, body):
    """Headers as Hee sends them (secrets[0] newest). For tests of this file."""
    h = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign_std(s, msg_id, timestamp, body) for s in secrets),
        "X-Hee-Timestamp": str(timestamp),
        "X-Hee-Signature": sign_hee(secrets[0], timestamp, body),
    }
    if len(secrets) > 1:
        h["X-Hee-Signature-Previous"] = sign_hee(secrets[1], timestamp, body)
    return h


def _timestamp_ok(value, now, tolerance):
    if value is None:
        return False, "timestamp missing"
    if not value.isascii() or not value.isdigit():
        return False, "timestamp malformed"
    if abs(now - int(value)) > tolerance:
        return False, "timestamp outside window"
    return True, ""


def verify_std(secrets, headers, body, now=None, tolerance=TOLERANCE):
    """(ok, reason) for the Standard Webhooks headers (lower-case names)."""
    now = time.time() if now is None else now
    msg_id, ts, sig = (headers.get(k) for k in
                       ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not sig:
        return False, "header missing"
    ok, why = _timestamp_ok(ts, now, tolerance)
    if not ok:
        return False, why
    got = sig.split()
    for secret in secrets:
        want = sign_std(secret, msg_id, ts, body)
        if any(hmac.compare_digest(g.encode(), want.encode()) for g in got):
            return True, ""
    return False, "signature mismatch"


def verify_hee(secrets, headers, body, now=None, tolerance=TOLERANCE):
    """(ok, reason, naive_ok): naive_ok is X-Hee-Signature alone against secrets[0]."""
    now = time.time() if now is None else now
    ts = headers.get("x-hee-timestamp")
    sigs = [headers.get("x-hee-signature"), headers.get("x-hee-signature-previous")]
    if not sigs[0]:
        return False, "header missing", False
    ok, why = _timestamp_ok(ts, now, tolerance)
    if not ok:
        return False, why, False

    def match(got, secret):
        return got is not None and hmac.compare_digest(
            got.lower().encode(), sign_hee(secret, ts, body).encode())

    naive = bool(secrets) and match(sigs[0], secrets[0])
    if any(match(g, s) for g in sigs for s in secrets):
        return True, "", naive
    return False, "signature mismatch", naive


# --------------------------------------------------------------- delivery --

class Delivery:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def verified(self):
        return self.std_ok and self.hee_ok

    def __repr__(self):
        return (f"<Delivery #{self.index} {self.method} {self.path} status={self.status} "
                f"type={self.event_type} id={self.event_id} std={self.std_ok} "
                f"hee={self.hee_ok}{'' if self.verified else ' ' + (self.std_reason or self.hee_reason)}>")


def _read_body(rfile, headers):
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = b""
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += rfile.read(size)
            rfile.readline()
    n = int(headers.get("content-length", "0") or "0")
    return rfile.read(n) if n > 0 else b""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hee-test-receiver"

    def setup(self):
        super().setup()
        self.server.receiver._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, False)

    def log_message(self, fmt, *args):
        pass

    def _handle(self):
        rcv = self.server.receiver
        raw = list(self.headers.items())
        headers = {k.lower(): v for k, v in raw}
        body = _read_body(self.rfile, headers)
        item, delay = rcv._on_request(self.command, self.path, raw, headers, body)
        if delay > 0:
            time.sleep(delay)
        if item == "hangup":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        payload = item.get("body", b"")
        if isinstance(payload, str):
            payload = payload.encode()
        try:
            self.send_response(item["status"])
            for k, v in item.get("headers", {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Peers resetting or us going down mid-request are part of the script.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def _norm_item(item):
    if item == "hangup":
        return item
    if isinstance(item, int):
        return {"status": item}
    if isinstance(item, dict) and "status" in item:
        return dict(item)
    raise ValueError(f"bad response item {item!r}")


class Receiver:
    def __init__(self, secret, *, host="127.0.0.1", port=0, path="/webhook",
                 tolerance=TOLERANCE, require_signature=False):
        self._secrets = [secret] if isinstance(secret, str) else list(secret or [])
        for s in self._secrets:
            _std_key(s)
        self.host, self.port, self.path = host, port, path
        self.tolerance = tolerance
        self.require_signature = require_signature
        self._cond = threading.Condition()
        self._events = []
        self._script = []
        self._default = {"status": 200}
        self._delay = 0.0
        self._server = None
        self._thread = None
        self._conns = set()

    # lifecycle
    def start(self):
        self._listen()
        return self

    def stop(self):
        self.go_down()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}{self.path}"

    def _listen(self):
        srv = _Server((self.host, self.port), _Handler)
        srv.receiver = self
        self.port = srv.server_address[1]
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"receiver:{self.port}", daemon=True)
        with self._cond:
            self._server, self._thread = srv, t
        t.start()

    def go_down(self):
        with self._cond:
            srv, t, self._server, self._thread = self._server, self._thread, None, None
            conns = list(self._conns)
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def come_back(self):
        if self._server is None:
            self._listen()

    @property
    def is_up(self):
        return self._server is not None

    def _track(self, conn, add):
        with self._cond:
            (self._conns.add if add else self._conns.discard)(conn)

    # scripting
    def set_responses(self, items):
        with self._cond:
            self._script = [_norm_item(i) for i in items]

    def set_default(self, item):
        with self._cond:
            self._default = _norm_item(item)

    def set_delay(self, seconds):
        with self._cond:
            self._delay = float(seconds)

    def set_secrets(self, secrets):
        for s in secrets:
            _std_key(s)
        with self._cond:
            self._secrets = list(secrets)

    def rotate(self, new_secret):
        self.set_secrets([new_secret] + self._secrets[:1])

    # observation
    def events(self):
        with self._cond:
            return list(self._events)

    def clear(self):
        with self._cond:
            self._events = []

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(list(self._events))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n  ".join(repr(e) for e in self._events) or "(none)"
                    raise TimeoutError(f"receiver: condition not met in {timeout}s; "
                                       f"deliveries:\n  {got}")
                self._cond.wait(left)

    def wait_count(self, n, timeout=10.0):
        return self.wait_for(lambda ev: ev if len(ev) >= n else None, timeout)

    # request path (handler threads)
    def _on_request(self, method, path, raw, headers, body):
        now = time.time()
        with self._cond:
            secrets = list(self._secrets)
        std_ok, std_reason = verify_std(secrets, headers, body, now, self.tolerance)
        hee_ok, hee_reason, naive = verify_hee(secrets, headers, body, now, self.tolerance)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        with self._cond:
            if self.require_signature and not (std_ok and hee_ok):
                item = {"status": 401, "body": b"bad signature"}
            elif self._script:
                item = self._script.pop(0)
            else:
                item = self._default
            d = Delivery(index=len(self._events), method=method, path=path, raw_headers=raw,
                         headers=headers, body=body, json=doc, arrived=now,
                         status=None if item == "hangup" else item["status"],
                         std_ok=std_ok, std_reason=std_reason, hee_ok=hee_ok,
                         hee_reason=hee_reason, hee_naive_ok=naive,
                         msg_id=headers.get("webhook-id"),
                         event_id=doc.get("id") if isinstance(doc, dict) else None,
                         event_type=doc.get("type") if isinstance(doc, dict) else None)
            self._events.append(d)
            self._cond.notify_all()
            delay = self._delay + (0 if item == "hangup" else float(item.get("delay", 0)))
        return item, delay


# -------------------------------------------------------------- self-test --

VEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VEC_TS = 1614265330
VEC_BODY = b'{"test": 2432232314}'
VEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VEC_HEE = "sha256=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"


def _post(rcv, body, headers, path=None):
    c = http.client.HTTPConnection(rcv.host, rcv.port, timeout=10)
    try:
        c.request("POST", path or rcv.path, body=body,
                  headers={"Content-Type": "application/json", **headers})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def _check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


def selftest():
    _check(sign_std(VEC_SECRET, VEC_ID, VEC_TS, VEC_BODY) == VEC_SIG,
           "Standard Webhooks published vector")
    _check(sign_hee(VEC_SECRET, VEC_TS, VEC_BODY) == VEC_HEE, "Hee scheme vector")
    hdr = {k.lower(): v for k, v in signed_headers([VEC_SECRET], VEC_ID, VEC_TS, VEC_BODY).items()}
    _check(verify_std([VEC_SECRET], hdr, VEC_BODY, now=VEC_TS) == (True, ""),
           "vector verifies at its own time")

    new = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    with Receiver(VEC_SECRET) as r:
        now = int(time.time())
        body = b'{"id":"evt_1","type":"domain.verified","data":{}}'
        st, _, _ = _post(r, body, signed_headers([VEC_SECRET], VEC_ID, now, body))
        d = r.wait_count(1)[-1]
        _check(st == 200 and d.verified and d.hee_naive_ok, "fresh signed delivery accepted")
        _check(d.event_id == "evt_1" and d.event_type == "domain.verified" and d.msg_id == VEC_ID,
               "delivery recorded with parsed JSON")

        tampered = body.replace(b"evt_1", b"evt_2")
        _post(r, tampered, signed_headers([VEC_SECRET], VEC_ID, now, body))
        d = r.wait_count(2)[-1]
        _check(not d.std_ok and not d.hee_ok and d.std_reason == "signature mismatch",
               "tampered body rejected by both schemes")

        _post(r, VEC_BODY, signed_headers([VEC_SECRET], VEC_ID, VEC_TS, VEC_BODY))
        d = r.wait_count(3)[-1]
        _check(not d.std_ok and d.std_reason == "timestamp outside window" and not d.hee_ok,
               "published vector's 2021 timestamp is outside the 5-minute window")

        _post(r, body, signed_headers([new], VEC_ID, now, body))
        _check(not r.wait_count(4)[-1].std_ok, "wrong secret rejected")

        # Rotation: Hee signs with [new, old]; receivers holding either verify.
        r.set_secrets([VEC_SECRET])
        _post(r, body, signed_headers([new, VEC_SECRET], VEC_ID, now, body))
        d = r.wait_count(5)[-1]
        _check(d.verified and not d.hee_naive_ok,
               "rotation: old-secret receiver verifies (via X-Hee-Signature-Previous)")
        r.rotate(new)
        _post(r, body, signed_headers([new, VEC_SECRET], VEC_ID, now, body))
        d = r.wait_count(6)[-1]
        _check(d.verified and d.hee_naive_ok, "rotation: new-secret receiver verifies naively")
        r.set_secrets([VEC_SECRET])

        # Scripted answers.
        r.set_responses([503, 503, 503, {"status": 429, "headers": {"Retry-After": "2"}}, 410])
        got = [_post(r, body, {}) for _ in range(6)]
        _check([g[0] for g in got] == [503, 503, 503, 429, 410, 200], "response script then default")
        _check(got[3][1].get("Retry-After") == "2", "Retry-After header sent")

        r.set_responses(["hangup"])
        try:
            _post(r, body, {})
            hung = False
        except (http.client.HTTPException, OSError):
            hung = True
        _check(hung, "hangup drops the connection")

        r.set_delay(0.3)
        t0 = time.monotonic()
        _post(r, body, {})
        _check(time.monotonic() - t0 >= 0.3, "delay")
        r.set_delay(0)

        # Down and back on the same port; a kept-alive connection dies too.
        port = r.port
        keep = http.client.HTTPConnection(r.host, r.port, timeout=5)
        keep.request("POST", r.path, body=b"{}")
        keep.getresponse().read()
        r.go_down()
        try:
            socket.create_connection((r.host, port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        _check(refused, "down: connection refused")
        try:
            keep.request("POST", r.path, body=b"{}")
            keep.getresponse().read()
            kept = True
        except (http.client.HTTPException, OSError):
            kept = False
        _check(not kept, "down: kept-alive connection closed")
        r.come_back()
        _check(r.port == port and _post(r, body, {})[0] == 200, "back on the same port")

    with Receiver(VEC_SECRET, require_signature=True) as r:
        now = int(time.time())
        r.set_responses([202])
        st1 = _post(r, b"{}", signed_headers([new], VEC_ID, now, b"{}"))[0]
        st2 = _post(r, b"{}", signed_headers([VEC_SECRET], VEC_ID, now, b"{}"))[0]
        _check((st1, st2) == (401, 202), "require_signature answers 401, keeps the script")
        try:
            r.wait_for(lambda ev: len(ev) > 5, timeout=0.2)
            timed_out = False
        except TimeoutError:
            timed_out = True
        _check(timed_out, "wait_for times out")
    print("receiver self-test passed")
    return 0


def serve(argv):
    secret, port = None, 0
    it = iter(argv)
    for a in it:
        if a == "--secret":
            secret = next(it)
        elif a == "--port":
            port = int(next(it))
    r = Receiver(secret, port=port).start()
    print(f"listening on {r.url}", flush=True)
    seen = 0
    try:
        while True:
            ev = r.wait_for(lambda e: len(e) > seen, timeout=3600)
            for d in ev[seen:]:
                print(repr(d), flush=True)
            seen = len(ev)
    except KeyboardInterrupt:
        r.stop()
    return 0


if __name__ == "__main__":
    if "--selftest" in sys.argv:
        sys.exit(selftest())
    if "--serve" in sys.argv:
        sys.exit(serve(sys.argv[1:]))
    print(__doc__)
    sys.exit(2)
