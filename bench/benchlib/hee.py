"""hee: Hee's control API as the benchmark uses it, and direct store seeding.

HeeApi speaks to the API over one keep-alive connection with the admin token
from data_dir/admin.token. Routes the running build does not have (404 from
the router, or a refused connection) raise Unavailable("feature missing: ..."),
which the scenarios turn into "n/a" cells rather than failures.

Seeding writes the SQLite store directly, with Hee stopped, for the counts an
API would take too long to reach (100,000 certificates, 1,000,000 domains);
the column lists follow schema.sql and are checked against the live table
first, so a schema change shows up as n/a with the reason.
"""

import concurrent.futures
import http.client
import json
import os
import sqlite3
import time

from .systems import UPSTREAM
from .util import Unavailable, read, wait_until

SLUG = "bench"


class HeeApi:
    def __init__(self, port, data_dir):
        self.port, self.data_dir = port, data_dir
        self.token = None
        self.conn = None

    # ---- transport -----------------------------------------------------------
    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self.conn

    def request(self, method, path, body=None, headers=None, token=True):
        h = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            h["Authorization"] = f"Bearer {self.load_token()}"
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            try:
                c = self._conn()
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return r.status, doc, raw

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def load_token(self):
        if self.token is None:
            p = os.path.join(self.data_dir, "admin.token")
            got = wait_until(lambda: os.path.exists(p) and read(p).strip(), 15)
            if not got:
                raise Unavailable("feature missing: admin token (data_dir/admin.token)")
            self.token = got
        return self.token

    def wait_ready(self, secs):
        def ready():
            try:
                s, _, _ = self.request("GET", "/readyz", token=False)
                return s == 200
            except OSError:
                return False
        if not wait_until(ready, secs, 0.002):
            raise RuntimeError("hee /readyz did not answer 200")

    def expect(self, what, status, doc, raw, ok=(200, 201)):
        if status in ok:
            return doc
        if status == 405 or (status == 404 and b"no such endpoint" in raw):
            raise Unavailable(f"feature missing: {what} -> {status}")
        msg = raw[:200].decode(errors="replace")
        raise Unavailable(f"{what} failed: {status} {msg}")

    # ---- resources -------------------------------------------------------------
    def setup_project(self, slug=SLUG, upstream=None, verification="registration"):
        body = {"slug": slug, "upstream": upstream or "http://" + UPSTREAM, "maxDomains": 1000000000,
                "settings": {"verification": verification}}
        s, d, raw = self.request("POST", "/v1/projects", body)
        if s == 409:
            s, d, raw = self.request("PATCH", f"/v1/projects/{slug}", {k: v for k, v in body.items() if k != "slug"})
        return self.expect("POST /v1/projects", s, d, raw)

    def add_domain(self, hostname, slug=SLUG):
        s, d, raw = self.request("POST", "/v1/edge/domains", {"hostname": hostname, "projectSlug": slug})
        return self.expect("POST /v1/edge/domains", s, d, raw)

    def project_token(self, slug=SLUG, scopes=("connections:read", "connections:write")):
        """A token of the project (resolve answers only the owning project's tokens)."""
        s, d, raw = self.request("POST", "/v1/tokens", {"projectSlug": slug, "scopes": list(scopes), "name": "bench"})
        d = self.expect("POST /v1/tokens", s, d, raw)
        tok = (d or {}).get("token", {})
        tok = tok.get("token") if isinstance(tok, dict) else tok
        if not tok:
            raise Unavailable(f"POST /v1/tokens returned no token: {raw[:120]!r}")
        return tok

    def resolve(self, hostname, token=None):
        h = {"Authorization": f"Bearer {token}"} if token else None
        s, d, raw = self.request("GET", f"/v1/edge/resolve?hostname={hostname}", headers=h)
        return self.expect("GET /v1/edge/resolve", s, d, raw)

    def metrics_text(self):
        s, _, raw = self.request("GET", "/metrics", token=False)
        if s != 200:
            s, _, raw = self.request("GET", "/metrics")
        return raw.decode(errors="replace") if s == 200 else ""


def add_domains_parallel(port, data_dir, hostnames, parallel=4, slug=SLUG, on_done=None):
    """Registers hostnames over `parallel` keep-alive connections.
    Returns (seconds, failures, first_error); on_done(hostname, t) per
    success, t = wall time the request was sent."""
    chunks = [hostnames[i::parallel] for i in range(parallel)]
    errs = []

    def worker(names):
        api = HeeApi(port, data_dir)
        bad = 0
        for n in names:
            try:
                t = time.time()
                api.add_domain(n, slug)
                if on_done:
                    on_done(n, t)
            except (Unavailable, OSError, http.client.HTTPException) as e:
                bad += 1
                if not errs:
                    errs.append(str(e))
                if "feature missing" in str(e):
                    break
        api.close()
        return bad

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        bad = sum(ex.map(worker, chunks))
    return time.monotonic() - t0, bad, (errs[0] if errs else "")


# ---- direct store seeding ---------------------------------------------------

DOMAIN_COLS = ["hostname", "project_id", "state", "verified", "verified_at", "verify_method", "challenge",
               "cert_status", "created_at", "updated_at"]
CERT_COLS = ["hostname", "chain_pem", "key_pem", "key_type", "issuer", "not_before", "not_after", "renew_at",
             "created_at"]


def _check_cols(db, table, cols):
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    if not have:
        raise Unavailable(f"feature missing: table {table} in the store")
    missing = [c for c in cols if c not in have]
    if missing:
        raise Unavailable(f"store schema changed: {table} lacks {missing}")


def open_store(data_dir, name="hee.db"):
    path = os.path.join(data_dir, name)
    if not os.path.exists(path):
        raise Unavailable(f"feature missing: store file {path}")
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA synchronous=OFF")
    return db


def project_id(db, slug=SLUG):
    row = db.execute("SELECT id FROM projects WHERE slug=?", (slug,)).fetchone()
    if not row:
        raise Unavailable(f"project {slug} not in the store")
    return row[0]


def seed_domains(db, pid, names, verified=True, with_certs=None):
    """Inserts domains in one transaction: verified ones as registration
    trusts them (and, with with_certs = (chain_pem, key_pem), one current
    certificate each), or unverified ones due for a probe now, as a
    registration through the API leaves them."""
    _check_cols(db, "domains", DOMAIN_COLS + ["next_probe_at"])
    if with_certs:
        _check_cols(db, "certificates", CERT_COLS)
    now = int(time.time() * 1000)
    day = 86400 * 1000
    db.execute("UPDATE projects SET max_domains = 1000000000 WHERE id = ?", (pid,))
    if verified:
        row = ("live", 1, now, "registration", "issued" if with_certs else "none", None)
    else:
        row = ("pending_ownership", 0, None, None, "none", now)
    state, ver, ver_at, method, cert_status, next_probe = row
    with db:
        db.executemany(
            f"INSERT INTO domains ({','.join(DOMAIN_COLS)}, next_probe_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ((n, pid, state, ver, ver_at, method, "bench-" + n, cert_status, now, now, next_probe) for n in names))
        if with_certs:
            chain, key = with_certs
            db.executemany(
                f"INSERT INTO certificates ({','.join(CERT_COLS)}) VALUES (?,?,?,?,?,?,?,?,?)",
                ((n, chain, key, "ecdsa-p256", "internal", now - day, now + 90 * day, now + 60 * day, now)
                 for n in names))
