"""loopserver: the threaded server under the test origins (upstream.py,
rawupstream.py): a listening socket on 127.0.0.1, optionally TLS, one
thread per accepted connection running the subclass's _serve(sock, cid),
and the request reader both use (HttpConn).

API (for subclasses)
    LoopbackServer.__init__(self, port=0, tls=None, backlog=512)
        listens at once; tls=(certfile, keyfile) serves HTTPS
    self.port, self.url ("http://127.0.0.1:N" or "https://..."), self.lock
    self.connections          connections accepted so far (cid = 1, 2, ...)
    self.raw_bytes            request bytes received so far (all connections)
    self.raw_tail             the last 64 KB of them, as received
    self._serve(sock, cid)    the subclass's per-connection loop; it must
                              call self._forget(sock) when it is done
    self._tls_wrap(sock)      the TLS socket for sock (sock itself for
                              plain), tracked for stop() in its place
    HttpConn(self, sock, cid) reads requests: read_head() -> (method, target,
                              version, [[name, value], ...]), with the raw
                              head in .last_head; read_body(headers) ->
                              (length, sha256 hex), Content-Length or chunked
                              (trailers read and dropped); Closed on EOF
    stop()                    stops accepting and shuts every connection
                              down, which wakes its thread; with
                              join_timeout > 0 (class attribute) it also
                              waits for the threads
"""

import hashlib
import socket
import ssl
import threading


class Closed(Exception):
    """The peer closed, or sent what HttpConn cannot read."""


class HttpConn:
    """Reads HTTP/1.1 requests off one accepted connection of srv,
    counting every byte in srv.raw_bytes / srv.raw_tail."""

    def __init__(self, srv, sock, cid):
        self.srv = srv
        self.s = sock
        self.cid = cid
        self.buf = b""

    def recv_more(self):
        d = self.s.recv(65536)
        if not d:
            raise Closed()
        with self.srv.lock:
            self.srv.raw_bytes += len(d)
            self.srv.raw_tail = (self.srv.raw_tail + d)[-65536:]
        self.buf += d

    def read_line(self, limit=65536):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise Closed()
            self.recv_more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self.recv_more()
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink(take)
            n -= len(take)

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise Closed()
            self.recv_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.last_head = head
        lines = head.split(b"\r\n")
        method, target, version = lines[0].decode("latin-1").split(" ", 2)
        headers = []
        for ln in lines[1:]:
            k, v = ln.decode("latin-1").split(":", 1)
            headers.append([k, v.strip()])
        return method, target, version, headers

    def read_body(self, headers):
        h = hashlib.sha256()
        total = [0]

        def sink(b):
            h.update(b)
            total[0] += len(b)

        te = header_value(headers, "transfer-encoding")
        cl = header_value(headers, "content-length")
        if te and "chunked" in te.lower():
            while True:
                size = int(self.read_line().split(b";")[0], 16)
                if size == 0:
                    while self.read_line() != b"":
                        pass
                    break
                self.read_exact(size, sink)
                if self.read_line() != b"":
                    raise Closed()
        elif cl is not None:
            self.read_exact(int(cl), sink)
        return total[0], h.hexdigest()

    def send(self, data):
        self.s.sendall(data)


def header_value(headers, name):
    """The first value of name (lower-case) in [[name, value], ...], or None."""
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class LoopbackServer:
    join_timeout = 0

    def __init__(self, port=0, tls=None, backlog=512):
        self.lock = threading.Lock()
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls[0], tls[1])
        self.connections = 0
        self.raw_bytes = 0
        self.raw_tail = b""
        self._socks = set()
        self._threads = []
        self._stop = False
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(backlog)
        self.ls.settimeout(0.2)  # so the accept loop sees stop()
        self.port = self.ls.getsockname()[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        self._stop = True
        self._acceptor.join(5)
        try:
            self.ls.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for s in socks:
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)  # plain or TLS: wakes its thread
            except OSError:
                pass
        for t in threads if self.join_timeout > 0 else ():
            t.join(self.join_timeout)

    def _accept(self):
        while not self._stop:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)  # accepted sockets inherit the listener's timeout
            with self.lock:
                self.connections += 1
                cid = self.connections
                self._socks.add(s)
                t = threading.Thread(target=self._serve, args=(s, cid), daemon=True)
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _tls_wrap(self, s):
        if not self.tls:
            return s
        w = self.tls.wrap_socket(s, server_side=True)  # takes over s's descriptor
        with self.lock:
            self._socks.discard(s)
            self._socks.add(w)
        return w

    def _forget(self, *socks):
        with self.lock:
            for s in socks:
                self._socks.discard(s)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
