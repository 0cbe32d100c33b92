"""upstream: a real HTTP/1.1 origin on 127.0.0.1 for edge tests (threads,
raw sockets, so tests control and observe exact bytes).

API
    u = Upstream(port=0, tls=None) starts listening at once (thread per connection);
                                  tls=(certfile, keyfile) serves HTTPS instead
    u.port, u.url ("http://127.0.0.1:N"), u.stop()
    u.requests                    list of dicts, one per complete request:
                                  method, target, path, query, version,
                                  headers [[name, value], ...] as received,
                                  body_len, body_sha256, conn_id, seq (1-based
                                  request number on its connection)
    u.header(req, name)           first value of name (case-insensitive) or None
    u.connections                 connections accepted so far
    u.raw_bytes                   request bytes received so far (all connections)
    u.raw_tail                    the last 64 KB of those bytes, as received (framing included)
    u.reset()                     clears requests / counters
    with Upstream() as u: ...

Routes (any method; HEAD answers the same headers without a body):
    /echo...                      200 JSON of the request as recorded above
    /stream?n=N[&chunked=1][&delay=MS][&block=B]
                                  N bytes of the pattern bytes(i % 251),
                                  Content-Length (or chunked), written in
                                  B-byte blocks (default 65536), sleeping MS
                                  between blocks
    /slow?delay=MS                sleep MS, then as /echo
    /status/CODE                  CODE with a short body (none for 1xx/204/304)
    /close                        read the request, close without answering
    /truncate?n=N                 Content-Length: N, send N/2 bytes, close
    /eof-body?n=N                 no Content-Length, N bytes, then close
    /conn-close                   /echo with "Connection: close", then close
    /early?status=S               answer S at once (before the body), close
    /ws                           WebSocket handshake (101), then echo every
                                  text/binary frame back; close on close frame
    /trailers                     chunked body "hello" + trailer X-Sum: 1
    /headers?name=V...            200, sets each query pair as a response header

Request bodies are read with Content-Length or chunked framing and hashed,
never stored. The pattern for /stream: pattern(n) below.
"""

import base64
import hashlib
import json
import ssl
import time
import urllib.parse

from loopserver import Closed, HttpConn, LoopbackServer, header_value

__all__ = ["Upstream", "pattern"]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern(n, start=0):
    """The bytes /stream sends: (start + i) % 251 for i in range(n)."""
    base = bytes(i % 251 for i in range(251))
    out = bytearray()
    off = start % 251
    while len(out) < n:
        out += base[off:]
        off = 0
    return bytes(out[:n])


def _reason(code):
    return {101: "Switching Protocols", 200: "OK", 204: "No Content", 304: "Not Modified",
            404: "Not Found", 413: "Payload Too Large", 500: "Internal Server Error"}.get(code, "Status")


class Upstream(LoopbackServer):
    def __init__(self, port=0, tls=None):
        self.requests = []
        super().__init__(port, tls)

    def reset(self):
        with self.lock:
            self.requests = []
            self.connections = 0
            self.raw_bytes = 0
            self.raw_tail = b""

    @staticmethod
    def header(req, name):
        return header_value(req["headers"], name.lower())

    def _serve(self, s, cid):
        seq = 0
        try:
            if self.tls:
                s.settimeout(10)
                s = self._tls_wrap(s)
                s.settimeout(None)
            c = HttpConn(self, s, cid)
            while True:
                method, target, version, headers = c.read_head()
                seq += 1
                u = urllib.parse.urlsplit(target)
                q = dict(urllib.parse.parse_qsl(u.query))
                path = u.path
                if path.startswith("/early"):
                    code = int(q.get("status", "413"))
                    c.send(b"HTTP/1.1 %d %s\r\nContent-Length: 6\r\nConnection: close\r\n\r\nearly\n"
                           % (code, _reason(code).encode()))
                    return
                body_len, body_sha = c.read_body(headers)
                rec = {"method": method, "target": target, "path": path, "query": u.query,
                       "version": version, "headers": headers, "body_len": body_len,
                       "body_sha256": body_sha, "conn_id": cid, "seq": seq}
                with self.lock:
                    self.requests.append(rec)
                if not self._respond(c, method, path, q, rec):
                    return
        except (Closed, OSError, ValueError, ssl.SSLError):
            pass
        finally:
            self._forget(s)

    def _respond(self, c, method, path, q, rec):
        """Writes one response; False closes the connection."""
        head_only = method == "HEAD"
        if path.startswith("/slow"):
            time.sleep(int(q.get("delay", "1000")) / 1000.0)
            path = "/echo"
        if path.startswith("/echo"):
            return self._send_body(c, 200, json.dumps(rec).encode(), head_only,
                                   [("Content-Type", "application/json")])
        if path.startswith("/conn-close"):
            self._send_body(c, 200, json.dumps(rec).encode(), head_only,
                            [("Content-Type", "application/json"), ("Connection", "close")])
            return False
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            if code < 200 or code in (204, 304):
                c.send(b"HTTP/1.1 %d %s\r\nX-Code: %d\r\n\r\n" % (code, _reason(code).encode(), code))
                return True
            return self._send_body(c, code, b"status %d\n" % code, head_only, [])
        if path.startswith("/stream"):
            return self._stream(c, q, head_only)
        if path.startswith("/close"):
            return False
        if path.startswith("/truncate"):
            n = int(q.get("n", "1000"))
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + pattern(n // 2))
            return False
        if path.startswith("/eof-body"):
            n = int(q.get("n", "1000"))
            c.send(b"HTTP/1.1 200 OK\r\n\r\n" + pattern(n))
            return False
        if path.startswith("/trailers"):
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                   b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")
            return True
        if path.startswith("/headers"):
            return self._send_body(c, 200, b"ok\n", head_only, list(q.items()))
        if path.startswith("/ws"):
            return self._websocket(c, rec)
        return self._send_body(c, 404, b"no such route\n", head_only, [])

    def _send_body(self, c, code, body, head_only, extra):
        h = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (code, _reason(code).encode(), len(body))
        for k, v in extra:
            h += ("%s: %s\r\n" % (k, v)).encode("latin-1")
        c.send(h + b"\r\n" + (b"" if head_only else body))
        return True

    def _stream(self, c, q, head_only):
        n = int(q.get("n", "0"))
        chunked = q.get("chunked") == "1"
        delay = int(q.get("delay", "0")) / 1000.0
        block = int(q.get("block", "65536"))
        if chunked:
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
        if head_only:
            return True
        sent = 0
        while sent < n:
            k = min(block, n - sent)
            data = pattern(k, sent)
            c.send(b"%x\r\n%s\r\n" % (k, data) if chunked else data)
            sent += k
            if delay:
                time.sleep(delay)
        if chunked:
            c.send(b"0\r\n\r\n")
        return True

    def _websocket(self, c, rec):
        key = self.header(rec, "sec-websocket-key") or ""
        acc = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        c.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
        while True:
            while len(c.buf) < 2:
                c.recv_more()
            b0, b1 = c.buf[0], c.buf[1]
            op, masked, ln = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            off = 2
            if ln == 126:
                need = 4
            elif ln == 127:
                need = 10
            else:
                need = 2
            while len(c.buf) < need + (4 if masked else 0):
                c.recv_more()
            if ln == 126:
                ln = int.from_bytes(c.buf[2:4], "big")
                off = 4
            elif ln == 127:
                ln = int.from_bytes(c.buf[2:10], "big")
                off = 10
            mask = c.buf[off:off + 4] if masked else b"\0\0\0\0"
            off += 4 if masked else 0
            while len(c.buf) < off + ln:
                c.recv_more()
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(c.buf[off:off + ln]))
            c.buf = c.buf[off + ln:]
            if op == 8:
                c.send(b"\x88\x00")
                return False
            hdr = bytes([0x80 | op])
            if len(payload) < 126:
                hdr += bytes([len(payload)])
            elif len(payload) < 65536:
                hdr += bytes([126]) + len(payload).to_bytes(2, "big")
            else:
                hdr += bytes([127]) + len(payload).to_bytes(8, "big")
            c.send(hdr + payload)


if __name__ == "__main__":
    import sys
    up = Upstream(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("READY", up.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()
