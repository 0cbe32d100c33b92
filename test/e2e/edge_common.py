"""edge_common: helpers shared by the edge_*.py end-to-end tests.

    ca = TestCA(dir)                  throw-away P-256 CA (openssl CLI)
    ca.issue(host, days=7, ip=None) -> (chain_pem, key_pem)   leaf for host (and IP), signed by ca
    ca.files(host, ip=None) -> (cert_path, key_path)        the same, written to files
    ca.path                           CA certificate file (trust it in clients)
    seed_project(h, slug, upstream, fallback=None, settings=None, hmac_key=b"k"*32) -> id
    seed_domain(h, host, project_id, verified=True, metadata="{}", removed=False) -> id
    seed_cert(h, host, chain_pem, key_pem, not_after_ms=None, sealed=False)
        rows written straight into the daemon's SQLite store (until tests
        switch to the API), in the daemon's WAL database; sealed: key_pem
        is a sealed blob (bytes, see seal_key) stored with key_sealed = 1
    sql_write(h, query, params=())    one write statement on the store
    seal_key(kek, context, pem) -> bytes   common/keyseal.c's format (needs the
                                      'cryptography' module; None without it)
    edge(h, ca, host, slug="p", upstream=..., **kw)  project+domain+cert in one go
    tls_client(h, host, alpn=("http/1.1",)) -> ssl socket to the TLS port (SNI host)
    fetch(h, host, method, path, headers=None, body=b"", tls=True) -> (status, headers, body)
        one request on a fresh connection via http.client
    raw(sock, data) / read_response(sock) -> (status, headers dict, body bytes)
    metrics(h) -> {"name{labels}": value}
    rss_kb(pid), cpu_ticks(pid)
    s_client(port, servername, alpn=None, data=b"") -> (rc, stdout+stderr text)
"""

import http.client
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.request

NOW_MS = lambda: int(time.time() * 1000)  # noqa: E731


def _ossl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class TestCA:
    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        _ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], d)
        _ossl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "7", "-subj", "/CN=hee edge test CA",
               "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt"], d)
        self.path = os.path.join(d, "ca.crt")
        self.n = 0

    def issue(self, host, days=7, ip=None):
        self.n += 1
        d, k, csr, crt, ext = self.dir, "l%d.key" % self.n, "l%d.csr" % self.n, "l%d.crt" % self.n, "l%d.ext" % self.n
        _ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", k], d)
        _ossl(["req", "-new", "-key", k, "-subj", "/CN=%s" % host[:64], "-out", csr], d)
        with open(os.path.join(d, ext), "w") as f:
            f.write("subjectAltName=DNS:%s%s\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                    % (host, ",IP:%s" % ip if ip else ""))
        _ossl(["x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
               "-days", str(days), "-sha256", "-extfile", ext, "-out", crt], d)
        with open(os.path.join(d, crt)) as f:
            chain = f.read()
        with open(os.path.join(d, k)) as f:
            key = f.read()
        return chain, key


def _files(ca, host, ip=None):
    chain, key = ca.issue(host, ip=ip)
    cp = os.path.join(ca.dir, "%s.files.crt" % host)
    kp = os.path.join(ca.dir, "%s.files.key" % host)
    with open(cp, "w") as f:
        f.write(chain)
    with open(kp, "w") as f:
        f.write(key)
    return cp, kp


TestCA.files = _files


def _db(h):
    for _ in range(200):
        if os.path.exists(h.db_path):
            break
        time.sleep(0.05)
    db = sqlite3.connect(h.db_path, timeout=10)
    db.execute("PRAGMA busy_timeout=10000")
    return db


def seed_project(h, slug, upstream, fallback=None, settings=None, hmac_key=b"k" * 32):
    db = _db(h)
    with db:
        cur = db.execute("INSERT INTO projects (slug, upstream, upstream_fallback, settings, hmac_key,"
                         " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                         (slug, upstream, fallback, settings or "{}", hmac_key, NOW_MS(), NOW_MS()))
    pid = cur.lastrowid
    db.close()
    return pid


def seed_domain(h, host, project_id, verified=True, metadata="{}", removed=False):
    db = _db(h)
    with db:
        cur = db.execute("INSERT INTO domains (hostname, project_id, state, verified, verified_at, challenge,"
                         " metadata, created_at, updated_at, removed_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (host, project_id, "verified" if verified else "created", 1 if verified else 0,
                          NOW_MS() if verified else None, "chal", metadata, NOW_MS(), NOW_MS(),
                          NOW_MS() if removed else None))
    did = cur.lastrowid
    db.close()
    return did


def seed_cert(h, host, chain, key, not_after_ms=None, sealed=False):
    na = not_after_ms or NOW_MS() + 7 * 86400 * 1000
    db = _db(h)
    with db:
        db.execute("INSERT INTO certificates (hostname, chain_pem, key_pem, key_sealed, key_type, issuer,"
                   " not_before, not_after, renew_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (host, chain, key if isinstance(key, bytes) else key.encode(), 1 if sealed else 0,
                    "ecdsa-p256", "internal", NOW_MS() - 3600000, na, na - 86400000, NOW_MS()))
    db.close()


def sql_write(h, query, params=()):
    db = _db(h)
    with db:
        db.execute(query, params)
    db.close()


def seal_key(kek, context, pem):
    """'HEEK1' | 12-byte nonce | AES-256-GCM(pem) | tag, with 'HEEK1' + context
    as additional data (common/keyseal.h)."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    nonce = os.urandom(12)
    aad = b"HEEK1" + context.encode()
    return b"HEEK1" + nonce + AESGCM(kek).encrypt(nonce, pem.encode() if isinstance(pem, str) else pem, aad)


def edge(h, ca, host, slug=None, upstream="http://127.0.0.1:9", fallback=None, settings=None,
         metadata="{}", hmac_key=b"k" * 32, project_id=None):
    if project_id is None:
        project_id = seed_project(h, slug or host.replace(".", "-"), upstream, fallback, settings, hmac_key)
    seed_domain(h, host, project_id, metadata=metadata)
    chain, key = ca.issue(host)
    seed_cert(h, host, chain, key)
    return project_id


def ssl_ctx(ca, alpn=("http/1.1",), strict_eof=False):
    """A client context trusting ca (None: no verification). strict_eof:
    a TCP close without close_notify is an error, not a clean end; Debian's
    Python sets OP_IGNORE_UNEXPECTED_EOF by default, which hides it."""
    ctx = ssl.create_default_context(cafile=ca.path if ca else None)
    if strict_eof:
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if not ca:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_client(h, host, ca, alpn=("http/1.1",), timeout=10):
    s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=timeout)
    return ssl_ctx(ca, alpn).wrap_socket(s, server_hostname=host)


def fetch(h, host, method="GET", path="/", headers=None, body=None, ca=None, tls=True, timeout=20):
    if tls:
        c = _SNIConnection(host, h.tls_port, ssl_ctx(ca), timeout)
    else:
        c = http.client.HTTPConnection("127.0.0.1", h.http_port, timeout=timeout)
    hdrs = {"Host": host}
    if headers:
        hdrs.update(headers)
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    c.close()
    return out


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port with SNI (and certificate name) = host."""

    def __init__(self, host, port, ctx, timeout):
        super().__init__("127.0.0.1", port, timeout=timeout, context=ctx)
        self._sni = host

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(s, server_hostname=self._sni)


def sni_conn(h, host, ca, timeout=20):
    return _SNIConnection(host, h.tls_port, ssl_ctx(ca), timeout)


def read_response(sock, head_only=False):
    """Reads one HTTP/1.1 response (Content-Length, chunked or until EOF)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("EOF before response head: %r" % buf[:200])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs.setdefault(k.strip().lower(), v.strip())
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, hdrs, b"", rest
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                raise ConnectionError("EOF in body")
            rest += d
        return status, hdrs, rest[:n], rest[n:]
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            line, rest = rest.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n\r\n" not in b"\r\n" + rest:
                    rest += sock.recv(65536)
                idx = (b"\r\n" + rest).index(b"\r\n\r\n")
                return status, hdrs, body, rest[idx + 2:]
            while len(rest) < size + 2:
                d = sock.recv(65536)
                if not d:
                    raise ConnectionError("EOF in chunk")
                rest += d
            body += rest[:size]
            rest = rest[size + 2:]
    while True:
        d = sock.recv(65536)
        if not d:
            return status, hdrs, rest, b""
        rest += d


def metrics(h):
    with urllib.request.urlopen(h.api_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(\S+)$", ln)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def metric(h, name, default=0.0):
    return metrics(h).get(name, default)


def wait_metric(h, name, pred, timeout=5.0):
    end = time.time() + timeout
    v = None
    while time.time() < end:
        v = metric(h, name)
        if pred(v):
            return v
        time.sleep(0.05)
    return v


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def s_client(port, servername=None, alpn=None, data=b"", timeout=10, extra=()):
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof"]
    if servername:
        args += ["-servername", servername]
    else:
        args += ["-noservername"]
    if alpn:
        args += ["-alpn", alpn]
    args += list(extra)
    p = subprocess.run(args, input=data, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("latin-1")


def edge_conf(**edge):
    """A Hee conf dict with the edge settings tests usually want."""
    e = {"handshake_wait": "3s", "negative_ttl": "60s"}
    e.update({k: str(v) for k, v in edge.items()})
    return {"edge": e, "log": {"level": "info"}}


def client_hello(sni=None, alpn=None, sni_bytes=None):
    """A TLS 1.3-capable ClientHello record (key share is random: good for
    what the edge reads before the handshake, not for completing one)."""
    import struct

    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body

    exts = b""
    name = sni_bytes if sni_bytes is not None else (sni.encode() if sni else None)
    if name is not None:
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += ext(0, struct.pack("!H", len(entry)) + entry)
    exts += ext(10, b"\x00\x04\x00\x1d\x00\x17")
    exts += ext(11, b"\x01\x00")
    exts += ext(13, b"\x00\x04\x04\x03\x08\x04")
    exts += ext(43, b"\x04\x03\x04\x03\x03")
    exts += ext(51, b"\x00\x24\x00\x1d\x00\x20" + os.urandom(32))
    if alpn:
        lst = b"".join(bytes([len(a)]) + a.encode() for a in alpn)
        exts += ext(16, struct.pack("!H", len(lst)) + lst)
    body = b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
    body += b"\x00\x08\x13\x01\x13\x02\xc0\x2b\xc0\x2f" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def hello_verdict(port, data, timeout=10):
    """Sends raw bytes to the TLS port; returns ("alert", description),
    ("http", status line), ("closed", None) or ("timeout", None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while len(got) < 7:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except socket.timeout:
        return "timeout", None
    except ConnectionResetError:
        return "closed", None
    finally:
        s.close()
    if len(got) >= 7 and got[0] == 0x15:
        return "alert", got[6]
    if got.startswith(b"HTTP/"):
        return "http", got.split(b"\r\n", 1)[0].decode()
    if not got:
        return "closed", None
    return "other", got[:20]


def curl_verbose(args):
    """curl -sS -v ARGS (bounded); the CompletedProcess, text mode."""
    return subprocess.run(["curl", "-sS", "-v", "--max-time", "20"] + args, capture_output=True, text=True,
                          timeout=30)


def curl_reused(stderr):
    """curl -v says how many connections it opened and whether it reused one."""
    opened = stderr.count("* Connected to ")
    return opened == 1 and ("Re-using existing connection" in stderr or "Reusing existing" in stderr)
