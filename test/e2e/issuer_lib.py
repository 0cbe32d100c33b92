"""issuer_lib: helpers shared by the issuer's end-to-end tests.

    handshake(port, name, cafile=None, timeout=30) -> dict
        One TLS handshake to 127.0.0.1:port with SNI name. Returns
        {"ok": bool, "ms": float, "serial": hex or None, "issuer": CN or None,
         "not_after": str or None, "error": str or None}. With cafile the
        chain must verify for name; without, any certificate is accepted
        (its facts are still read).
    handshakes(port, names, cafile=None, timeout=30) -> [dict]
        All at once, one thread each; results in the order of names.
    s_client_verify(port, name, cafile) -> (ok, text)
        `openssl s_client -verifyCAfile cafile -verify_return_error`.
    add_verified(h, hosts, project_slug) -> None
        Inserts verified domains straight into the store (state "verified",
        no certificate), as if the verifier had just passed them but nothing
        had asked for a certificate yet: the next handshake is the first.
    metric(h, name, labels="") -> float   one sample from /metrics
    sql_write(h, query, params=())        a write on the store (WAL: safe
                                          while the daemon runs)
    stats(ms_list) -> (median, p90, max)
"""

import math
import os
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

__all__ = ["handshake", "handshakes", "s_client_verify", "add_verified", "metric", "sql_write", "stats", "ca_export"]


def _cert_facts(der):
    """serial, issuer CN and notAfter of a DER certificate (via openssl)."""
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial", "-issuer", "-enddate",
                        "-nameopt", "multiline"], input=der, capture_output=True, timeout=10)
    serial = issuer = not_after = None
    for line in p.stdout.decode(errors="replace").splitlines():
        s = line.strip()
        if s.startswith("serial="):
            serial = s[len("serial="):].lower().lstrip("0") or "0"
        elif s.startswith("commonName") and issuer is None:
            issuer = s.split("=", 1)[1].strip()
        elif s.startswith("notAfter="):
            not_after = s[len("notAfter="):]
    return serial, issuer, not_after


def _facts_from_dict(cert):
    issuer = None
    for rdn in cert.get("issuer", ()):
        for k, v in rdn:
            if k == "commonName":
                issuer = v
    serial = cert.get("serialNumber", "").lower().lstrip("0") or None
    return serial, issuer, cert.get("notAfter")


def _handshake(port, name, cafile, timeout):
    """The handshake alone (no process spawned: timing stays honest)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    t0 = time.monotonic()
    res = {"ok": False, "ms": None, "serial": None, "issuer": None, "not_after": None, "error": None,
           "_der": None, "_dict": None}
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                res["ms"] = (time.monotonic() - t0) * 1000
                res["_der"] = tls.getpeercert(binary_form=True)
                res["_dict"] = tls.getpeercert() if cafile else None
        res["ok"] = True
    except Exception as e:  # refused, alert, verification failure, timeout
        res["ms"] = (time.monotonic() - t0) * 1000
        res["error"] = "%s: %s" % (type(e).__name__, e)
    return res


def _finish(res):
    if res["_dict"]:
        res["serial"], res["issuer"], res["not_after"] = _facts_from_dict(res["_dict"])
    elif res["_der"]:
        res["serial"], res["issuer"], res["not_after"] = _cert_facts(res["_der"])
    del res["_der"], res["_dict"]
    return res


def handshake(port, name, cafile=None, timeout=30):
    return _finish(_handshake(port, name, cafile, timeout))


def handshakes(port, names, cafile=None, timeout=30):
    out = [None] * len(names)
    go = threading.Event()

    def one(i, n):
        go.wait()
        out[i] = _handshake(port, n, cafile, timeout)

    ts = [threading.Thread(target=one, args=(i, n)) for i, n in enumerate(names)]
    for t in ts:
        t.start()
    go.set()
    for t in ts:
        t.join()
    return [_finish(r) for r in out]


def s_client_verify(port, name, cafile):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name,
                        "-verifyCAfile", cafile, "-verify_return_error", "-verify_hostname", name, "-brief"],
                       input="", capture_output=True, text=True, timeout=30)
    text = p.stdout + p.stderr
    return p.returncode == 0 and "Verification: OK" in text, text


def sql_write(h, query, params=()):
    db = sqlite3.connect(h.db_path, timeout=10)
    try:
        db.execute(query, params)
        db.commit()
    finally:
        db.close()


def add_verified(h, hosts, project_slug):
    now = int(time.time() * 1000)
    db = sqlite3.connect(h.db_path, timeout=10)
    try:
        (pid,) = db.execute("SELECT id FROM projects WHERE slug = ?", (project_slug,)).fetchone()
        for host in hosts:
            db.execute("INSERT INTO domains (hostname, project_id, state, verified, verified_at, verify_method,"
                       " challenge, created_at, updated_at) VALUES (?, ?, 'verified', 1, ?, 'registration',"
                       " 'test', ?, ?)", (host, pid, now, now, now))
        db.commit()
    finally:
        db.close()


def metric(h, name, labels=""):
    with urllib.request.urlopen(h.api_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    want = name + labels
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def stats(ms):
    s = sorted(ms)
    if not s:
        return None, None, None
    med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    p90 = s[max(0, math.ceil(0.9 * len(s)) - 1)]  # nearest rank
    return med, p90, s[-1]


def ca_export(h):
    """Writes `hee ca export` to a temp file; returns its path."""
    pem = h.cli("ca", "export").stdout
    fd, path = tempfile.mkstemp(prefix="hee-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    return path
