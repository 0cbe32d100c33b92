"""heetest: run the real `hee` daemon in end-to-end tests and talk to it.

API
    free_port() -> int                a TCP port on 127.0.0.1 reserved for this process
                                      (bound, not listening; listeners need SO_REUSEADDR)

    h = Hee(conf=None, workers=2, env=None, start=True, bin=None)
        Writes a config file into a fresh temp dir (data_dir = <tmp>/data,
        every listener on a free 127.0.0.1 port, [verify] resolvers on a
        closed 127.0.0.1 port so nothing leaves loopback) and, unless start=False,
        starts `hee serve --config …` and waits for /readyz.
        conf: {"section": {"key": "value"}} merged over the defaults below
              (a value of None removes the key).
        env:  extra environment for the daemon (e.g. HEE_LOG_LEVEL=debug).
        bin:  the binary; default $HEE_BIN.
    h.start() / h.stop() / h.restart()
        stop(): SIGTERM, then SIGKILL after 10 s; raises AssertionError if
        the daemon had already exited on its own or printed a sanitizer
        report (AddressSanitizer, LeakSanitizer, UBSan "runtime error:").
    h.kill(sig=signal.SIGKILL)        send sig and reap (no checks): for crash tests
    h.alive() -> bool
    h.api_port, h.tls_port, h.http_port, h.api_url ("http://127.0.0.1:N")
    h.dir, h.data_dir, h.conf_path, h.db_path
    h.admin_token                     contents of data_dir/admin.token (first start writes it)
    h.client(token=None) -> Client    keep-alive JSON client on the API port
    h.admin() -> Client               client holding the operator token
    h.new_project(slug, scopes=(all four project scopes), upstream=…, **fields)
                                      creates a project via the API, returns
                                      a Client holding a new project token
    h.new_token(slug, scopes) -> Client
    h.cli(*args, check=True, input=None) -> CompletedProcess
                                      runs `hee ARGS --config <conf>`; text mode
    h.stderr_text() -> str            the daemon's stderr so far (all runs)
    h.sql(query, params=()) -> rows   read-only sqlite3 query on the store
    with Hee() as h: ...              start (if asked) and stop around a block

    c = Client(base_url, token=None, timeout=10)
    c.request(method, path, body=None, headers=None, raw=None, ctype="application/json")
        body: any JSON value (serialised) / raw: bytes sent as is.
        Returns Response: .status, .headers (dict, lower-case names),
        .body (bytes), .text, .json() (parsed; cached), .error_code
        (body's error.code or None).
    c.get/post/put/patch/delete(path, body=None, **kw)   shorthands
    c.with_token(token) -> Client     same server, other token

    Tests:
    @test                             registers a function in run order
    run()                             runs the registered tests, prints one
                                      line per test and "N passed, N failed",
                                      exits 1 if any failed (or none ran)
    expect(cond, msg)                 assert with a message
    expect_error(resp, status, code)  asserts an API error response
    recv_to_eof(sock) -> bytes        reads until the peer closes
    peer_closed(sock, timeout=5)      True when the peer closes/resets in time

    load_yaml(text)                   PyYAML if installed, else a parser for
                                      the block-style subset openapi-v1.yaml uses
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

__all__ = ["free_port", "Hee", "Client", "Response", "test", "run", "expect", "expect_error", "load_yaml"]

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


_RESERVED = []  # sockets holding the ports free_port() handed out


def free_port():
    """A TCP port on 127.0.0.1 reserved for this process until it exits.

    The port stays bound here (SO_REUSEADDR, never listening), so with tests
    running in parallel no other free_port() or bind(0) can be handed the
    same port before the daemon listens on it; hee, whose listeners set
    SO_REUSEADDR, can still listen on it, and connecting to it before then
    is refused as if it were closed. Merely closing the probe socket used to
    leave a window in which two daemons could get one port, and with
    SO_REUSEPORT on the edge listeners both would listen on it at once."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _RESERVED.append(s)
    return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._json = None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body)
        return self._json

    @property
    def error_code(self):
        try:
            return self.json()["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return "Response(%d, %r)" % (self.status, self.body[:300])


class Client:
    """A keep-alive HTTP/1.1 client; reconnects once if the server closed."""

    def __init__(self, base_url, token=None, timeout=10):
        assert base_url.startswith("http://")
        hostport = base_url[len("http://"):].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.base_url = base_url
        self.token = token
        self.timeout = timeout
        self._conn = None

    def with_token(self, token):
        return Client(self.base_url, token, self.timeout)

    def close(self):
        if self._conn:
            self._conn.close()
            self._conn = None

    def _send(self, method, path, data, hdrs):
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._conn.request(method, path, body=data, headers=hdrs)
        r = self._conn.getresponse()
        body = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(r.status, headers, body)

    def request(self, method, path, body=None, headers=None, raw=None, ctype="application/json"):
        hdrs = {}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None and ctype:
            hdrs["Content-Type"] = ctype
        if headers:
            hdrs.update(headers)
        try:
            return self._send(method, path, data, hdrs)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                http.client.CannotSendRequest, http.client.BadStatusLine):
            self.close()
            return self._send(method, path, data, hdrs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class Hee:
    def __init__(self, conf=None, workers=2, env=None, start=True, bin=None):
        self.bin = bin or os.environ.get("HEE_BIN")
        if not self.bin:
            raise RuntimeError("HEE_BIN is not set (ctest sets it; or pass bin=)")
        self.dir = tempfile.mkdtemp(prefix="heetest-")
        self.data_dir = os.path.join(self.dir, "data")
        self.conf_path = os.path.join(self.dir, "hee.conf")
        self.db_path = os.path.join(self.data_dir, "hee.db")
        self.api_port = free_port()
        self.tls_port = free_port()
        self.http_port = free_port()
        self.api_url = "http://127.0.0.1:%d" % self.api_port
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            self.env.update(env)
        self.proc = None
        self._stderr_path = os.path.join(self.dir, "stderr.log")
        self._stderr = None
        self._stopped_ok = True
        # However the test ends (an exception during set-up, a missed stop),
        # the daemon ends with it.
        atexit.register(self._reap)
        sections = {
            "server": {"data_dir": self.data_dir, "workers": str(workers), "grace_period": "2s"},
            "log": {"level": "info"},
            "edge": {"tls_listen": "127.0.0.1:%d" % self.tls_port,
                     "http_listen": "127.0.0.1:%d" % self.http_port},
            "api": {"listen": "127.0.0.1:%d" % self.api_port},
            # Tests never leave loopback: DNS probes go to a closed local port
            # unless a test points them at its own server.
            "verify": {"resolvers": "127.0.0.1:%d" % free_port()},
        }
        for sec, kv in (conf or {}).items():
            sections.setdefault(sec, {})
            for k, v in kv.items():
                if v is None:
                    sections[sec].pop(k, None)
                else:
                    sections[sec][k] = str(v)
        with open(self.conf_path, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")
        if start:
            self.start()

    # ---- life cycle ----

    def start(self, timeout=30):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._stderr = open(self._stderr_path, "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.conf_path],
                                     stdout=self._stderr, stderr=self._stderr, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("hee exited during start-up (rc=%s):\n%s"
                                     % (self.proc.returncode, self.stderr_text()[-4000:]))
            try:
                with urllib.request.urlopen(self.api_url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except Exception:
                pass
            time.sleep(0.05)
        raise AssertionError("hee did not become ready in %ss:\n%s" % (timeout, self.stderr_text()[-4000:]))

    def _reap(self):
        if self.alive():
            self.kill()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_stderr()

    def stop(self):
        """TERM then KILL; fails on an earlier unexpected exit or a sanitizer report."""
        problems = []
        if self.proc is not None:
            if self.proc.poll() is not None:
                problems.append("hee had exited on its own (rc=%s)" % self.proc.returncode)
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    problems.append("hee ignored SIGTERM for 10 s")
                if self.proc.returncode not in (0, None):
                    problems.append("hee exited with rc=%s after SIGTERM" % self.proc.returncode)
        self._close_stderr()
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                problems.append("sanitizer report in stderr (%s)" % mark)
        self.proc = None
        if problems:
            raise AssertionError("; ".join(problems) + "\n--- stderr tail ---\n" + text[-6000:])

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        """Removes the temp dir (after stop/kill). A daemon still running (a
        test failed before stopping it) is killed first, so it cannot outlive
        the test and load the machine or hold ports for the rest of the run."""
        if self.alive():
            self.kill()
        if sys.exc_info()[0] is not None:  # called from a finally: the test is failing
            self._print_log_tail()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _print_log_tail(self, lines=60):
        """The daemon's own account of a failing test, before its directory
        goes: every warning and error, then the last lines."""
        text = self.stderr_text().splitlines()
        bad = [x for x in text if "level=warn" in x or "level=error" in x]
        print("--- hee %s: %d warnings/errors (last 30), then the last %d lines ---"
              % (self.dir, len(bad), lines), flush=True)
        print("\n".join(bad[-30:] + ["..."] + text[-lines:]), flush=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, et, ev, tb):
        try:
            if self.proc is not None:
                self.stop()
        finally:
            if et is None:
                self.cleanup()
        return False

    def _close_stderr(self):
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    # ---- helpers ----

    @property
    def admin_token(self):
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            return f.read().strip()

    def client(self, token=None):
        return Client(self.api_url, token)

    def admin(self):
        """A client holding the first operator token."""
        return Client(self.api_url, self.admin_token)

    def new_project(self, slug, scopes=("connections:read", "connections:write", "webhooks:write", "usage:read"),
                    upstream="http://127.0.0.1:9", **fields):
        """Creates a project through the API and returns a Client holding a
        new token of it with scopes. fields: more ProjectCreate fields
        (maxDomains, upstreamFallback, settings)."""
        adm = self.admin()
        body = {"slug": slug, "upstream": upstream}
        body.update(fields)
        r = adm.post("/v1/projects", body)
        if r.status != 201:
            raise AssertionError("project %s: %r" % (slug, r))
        return self.new_token(slug, scopes)

    def new_token(self, slug, scopes):
        r = self.admin().post("/v1/tokens", {"projectSlug": slug, "scopes": list(scopes)})
        if r.status != 201:
            raise AssertionError("token for %s: %r" % (slug, r))
        return Client(self.api_url, r.json()["token"]["token"])

    def cli(self, *args, check=True, input=None, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([self.bin] + list(args) + ["--config", self.conf_path], capture_output=True,
                           text=True, input=input, env=e, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("hee %s failed (rc=%d): %s" % (" ".join(args), p.returncode, p.stderr))
        for mark in SANITIZER_MARKS:
            if mark in p.stderr:
                raise AssertionError("sanitizer report from hee %s:\n%s" % (" ".join(args), p.stderr))
        return p

    def stderr_text(self):
        try:
            with open(self._stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sql(self, query, params=()):
        db = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)
        try:
            return db.execute(query, params).fetchall()
        finally:
            db.close()


# ---- a tiny test runner ----

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def recv_to_eof(sock):
    """Every byte the peer sends until it closes (socket timeouts apply)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def peer_closed(sock, timeout=5):
    """True when the peer closes or resets sock within timeout (a byte
    arriving instead means it did not)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except (ConnectionResetError, OSError):
        return True


def expect(cond, msg="expectation failed"):
    if not cond:
        raise AssertionError(msg)


def expect_error(resp, status, code=None):
    expect(resp.status == status, "expected HTTP %d, got %d: %s" % (status, resp.status, resp.body[:400]))
    if code is not None:
        expect(resp.headers.get("content-type", "").startswith("application/json"),
               "error without a JSON content type: %r" % resp.headers)
        err = resp.json().get("error", {})
        expect(err.get("code") == code, "expected error code %r, got %r" % (code, err))
        expect(isinstance(err.get("message"), str) and err.get("message"), "error without a message")
        expect(isinstance(err.get("ref"), str) and err.get("ref"), "error without a ref")


def run(tests=None, teardown=None):
    tests = tests if tests is not None else _tests
    passed = failed = 0
    for fn in tests:
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok   %-50s %.2fs" % (fn.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-50s %.2fs" % (fn.__name__, time.time() - t0), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    if teardown:
        try:
            teardown()
        except Exception:
            failed += 1
            print("FAIL teardown", flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not passed else 0)


# ---- YAML (the subset openapi-v1.yaml is written in) ----

def load_yaml(text):
    try:
        import yaml  # noqa: F401
        return yaml.safe_load(text)
    except ImportError:
        return _MiniYaml(text).parse()


class _MiniYaml:
    """Block mappings and sequences, one-line plain/quoted scalars, flow
    sequences of scalars and {} / []. Enough for openapi-v1.yaml."""

    def __init__(self, text):
        self.lines = []
        for raw in text.splitlines():
            s = raw.rstrip()
            st = s.lstrip()
            if not st or st.startswith("#"):
                continue
            self.lines.append((len(s) - len(st), st))
        self.i = 0

    def parse(self):
        return self._block(0) if self.lines else None

    def _block(self, indent):
        if self.lines[self.i][1].startswith("- "):
            return self._seq(indent)
        return self._map(indent)

    def _map(self, indent):
        out = {}
        while self.i < len(self.lines):
            ind, s = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise ValueError("bad indentation at %r" % s)
            key, rest = self._split_key(s)
            self.i += 1
            if rest == "":
                if self.i < len(self.lines) and (self.lines[self.i][0] > ind or
                                                 (self.lines[self.i][0] == ind and
                                                  self.lines[self.i][1].startswith("- "))):
                    out[key] = self._block(self.lines[self.i][0])
                else:
                    out[key] = None
            else:
                out[key] = self._scalar(rest)
        return out

    def _seq(self, indent):
        out = []
        while self.i < len(self.lines):
            ind, s = self.lines[self.i]
            if ind < indent or not s.startswith("- "):
                break
            item = s[2:].strip()
            if self._is_key(item):
                # "- key: v" opens a mapping whose keys sit at ind + 2
                self.lines[self.i] = (ind + 2, item)
                out.append(self._map(ind + 2))
            else:
                self.i += 1
                out.append(self._scalar(item))
        return out

    @staticmethod
    def _is_key(s):
        if s.startswith(("'", '"', "[", "{")):
            q = s[0]
            if q in "'\"":
                end = s.find(q, 1)
                return end > 0 and s[end + 1:end + 2] == ":"
            return False
        return ": " in s or s.endswith(":")

    def _split_key(self, s):
        if s[0] in "'\"":
            end = s.index(s[0], 1)
            key = s[1:end]
            rest = s[end + 1:]
            assert rest.startswith(":"), s
            return key, rest[1:].strip()
        if s.endswith(":"):
            return s[:-1], ""
        k, rest = s.split(": ", 1)
        return k, rest.strip()

    def _scalar(self, s):
        if s.startswith('"'):
            return json.loads(s)
        if s.startswith("'"):
            return s[1:-1].replace("''", "'")
        if s == "{}":
            return {}
        if s.startswith("["):
            inner = s[1:-1].strip()
            if not inner:
                return []
            return [self._scalar(x.strip()) for x in self._split_flow(inner)]
        if s in ("true", "false"):
            return s == "true"
        if s in ("null", "~"):
            return None
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            return s

    @staticmethod
    def _split_flow(s):
        parts, cur, q = [], "", None
        for ch in s:
            if q:
                cur += ch
                if ch == q:
                    q = None
            elif ch in "'\"":
                q = ch
                cur += ch
            elif ch == ",":
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        return parts
