"""rawupstream: a scripted, misbehaving HTTP/1.1 origin on 127.0.0.1 for
edge tests. Where upstream.py is a well-behaved origin, this one answers
every request with an exact list of steps chosen by the request's path, so
a test can send broken framing, extra bytes, interim responses, resets and
TLS truncations at exact moments. One thread per connection.

API
    u = RawUpstream(routes=None, tls=None)
        starts listening at once; tls=(certfile, keyfile) serves HTTPS
    u.port, u.url ("http://127.0.0.1:N" or "https://127.0.0.1:N"), u.stop()
    u.route(path, steps, read_body=True)
        answer requests whose path (target without the query) is path with
        steps: a list of the step values below, or a callable
        steps(req) -> list (called per request, e.g. to vary per connection).
        read_body=False answers as soon as the request head is in, without
        reading the body; the connection is closed after the steps (its
        later bytes are never parsed).
        routes={path: steps} in the constructor is the same with read_body.
        Unrouted paths get a 404 with a short body.
    u.requests                list of Req, one per request head read:
                              .conn_id (1-based, per accepted connection),
                              .seq (1-based request number on its connection),
                              .method, .target, .path, .head (raw head bytes
                              up to and excluding the blank line), .body_len
    u.paths(conn_id)          paths served on that connection, in order
    u.conn_of(path)           conn_ids that served path, in order
    u.connections             connections accepted so far
    u.wait_requests(n, timeout=5) -> bool   until len(u.requests) >= n
    u.reset()                 clears requests (connection ids keep counting)

Steps (run in order on the connection, after the request was read)
    send(data)                sendall(data) (TLS: as few records as fit)
    sleep(seconds)
    close()                   close (plain: FIN; TLS: FIN without close_notify)
    rst()                     SO_LINGER 0, then close: a TCP RST
    shutdown_write()          half-close: FIN, keep reading
    close_notify()            TLS only: send close_notify (unwrap), then close
    call(fn)                  fn() in the connection's thread (e.g. to set a
                              threading.Event at an exact moment)
    A list that ends without close()/rst()/close_notify() keeps the
    connection open for the next request.

Request bodies: Content-Length or chunked, read with loopserver.HttpConn
(as upstream.py reads them) and counted, never stored.
"""

import socket
import struct
import time

from loopserver import Closed, HttpConn, LoopbackServer

__all__ = ["RawUpstream", "Req", "send", "sleep", "close", "rst", "shutdown_write", "close_notify", "call"]


def send(data):
    return ("send", data)


def sleep(seconds):
    return ("sleep", seconds)


def close():
    return ("close",)


def rst():
    return ("rst",)


def shutdown_write():
    return ("shutdown_write",)


def close_notify():
    return ("close_notify",)


def call(fn):
    return ("call", fn)


NOT_FOUND = [send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n")]


class Req:
    def __init__(self, conn_id, seq, method, target, head, body_len):
        self.conn_id = conn_id
        self.seq = seq
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.head = head
        self.body_len = body_len

    def __repr__(self):
        return "Req(conn=%d seq=%d %s %s)" % (self.conn_id, self.seq, self.method, self.target)


class _Done(Exception):
    """The connection is finished (closed by a step or by the peer)."""


class RawUpstream(LoopbackServer):
    join_timeout = 5  # stop() waits for the connection threads

    def __init__(self, routes=None, tls=None):
        self.routes = {}
        for path, steps in (routes or {}).items():
            self.route(path, steps)
        self.requests = []
        super().__init__(0, tls, backlog=128)

    # ---- test-facing helpers ----

    def route(self, path, steps, read_body=True):
        self.routes[path] = (steps, read_body)

    def reset(self):
        with self.lock:
            self.requests = []

    def paths(self, conn_id):
        with self.lock:
            return [r.path for r in self.requests if r.conn_id == conn_id]

    def conn_of(self, path):
        with self.lock:
            return [r.conn_id for r in self.requests if r.path == path]

    def wait_requests(self, n, timeout=5):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.requests) >= n:
                    return True
            time.sleep(0.01)
        return False

    # ---- server ----

    def _serve(self, raw, cid):
        s = raw
        try:
            raw.settimeout(30)
            s = self._tls_wrap(raw)
            c = HttpConn(self, s, cid)
            seq = 0
            while not self._stop:
                method, target, _, headers = c.read_head()
                steps, read_body = self.routes.get(target.split("?", 1)[0], (NOT_FOUND, True))
                body_len = c.read_body(headers)[0] if read_body else 0
                seq += 1
                req = Req(cid, seq, method, target, c.last_head, body_len)
                with self.lock:
                    self.requests.append(req)
                if callable(steps):
                    steps = steps(req)
                self._run(s, steps)
                if not read_body:
                    raise _Done()  # the rest of the request was never parsed
        except (_Done, Closed, OSError, ValueError):
            pass
        finally:
            self._forget(raw, s)

    def _run(self, s, steps):
        for st in steps:
            kind = st[0]
            if kind == "send":
                s.sendall(st[1])
            elif kind == "sleep":
                time.sleep(st[1])
            elif kind == "call":
                st[1]()
            elif kind == "shutdown_write":
                socket.socket.shutdown(s, socket.SHUT_WR)  # (SSLSocket.shutdown would drop TLS)
            elif kind == "close":
                raise _Done()
            elif kind == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raise _Done()
            elif kind == "close_notify":
                try:
                    s.settimeout(1)
                    s.unwrap()  # sends close_notify; the peer may close without answering
                except (OSError, ValueError):
                    pass
                raise _Done()
            else:
                raise ValueError("unknown step %r" % (st,))
