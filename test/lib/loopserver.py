"""loopserver: the threaded server under the test origins (upstream.py,
rawupstream.py): a listening socket on 127.0.0.1, optionally TLS, one
thread per accepted connection running the subclass's _serve(sock, cid).

API (for subclasses)
    LoopbackServer.__init__(self, port=0, tls=None, backlog=512)
        listens at once; tls=(certfile, keyfile) serves HTTPS
    self.port, self.url ("http://127.0.0.1:N" or "https://..."), self.lock
    self.connections          connections accepted so far (cid = 1, 2, ...)
    self._serve(sock, cid)    the subclass's per-connection loop; it must
                              call self._forget(sock) when it is done
    self._tls_wrap(sock)      the TLS socket for sock (sock itself for
                              plain), tracked for stop() in its place
    stop()                    stops accepting and shuts every connection
                              down, which wakes its thread; with
                              join_timeout > 0 (class attribute) it also
                              waits for the threads
"""

import socket
import ssl
import threading


class LoopbackServer:
    join_timeout = 0

    def __init__(self, port=0, tls=None, backlog=512):
        self.lock = threading.Lock()
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls[0], tls[1])
        self.connections = 0
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
