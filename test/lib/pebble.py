"""pebble: start a throw-away Pebble ACME server (Debian's `pebble`) for tests.

API
    p = Pebble(workdir=None, http_port=5002, tls_port=5001, always_valid=False,
               nonce_reject=0, dns_server=None, mock_dns=False, eab_keys=None,
               env=None, start_timeout=15.0, validity=None)
    p.start()            -> p; generates certs + pebble.json, starts pebble and
                            waits until the directory answers over HTTPS.
    p.directory_url      "https://127.0.0.1:<port>/dir"
    p.ca_file            CA that verifies Pebble's own HTTPS listener (pass it
                         to the ACME client; never disable verification)
    p.mgmt_url           "https://127.0.0.1:<mgmt>"
    p.root_pem()         PEM of the issuing root (/roots/0); chains verify to it
    p.log_text()         Pebble's output so far (for failure messages)
    p.stop()             TERM, then KILL after 5 s; removes the workdir it made
    with Pebble(...) as p: ...   start() and stop() around the block

    http_port/tls_port: where Pebble's validator connects for http-01 and
    tls-alpn-01 (point them at the edge under test). dns_server "127.0.0.1:N"
    is passed as -dnsserver; mock_dns=True instead starts pebble-challtestsrv
    as a DNS server answering every A query with 127.0.0.1 (and no AAAA), so
    any name validates against the local ports. nonce_reject sets PEBBLE_WFE_NONCEREJECT (Pebble's
    own default is 5 %, ours 0 so tests are deterministic unless they ask).
    eab_keys {kid: base64url-hmac} turns externalAccountBindingRequired on.
    PEBBLE_VA_NOSLEEP=1 is always set; always_valid sets PEBBLE_VA_ALWAYS_VALID.
    validity: certificate lifetime in seconds (certificateValidityPeriod), for
    renewal and expiry tests.

Command line (for C tests, which exec it and read one line):
    python3 pebble.py [--always-valid] [--nonce-reject N] [--http-port N]
                      [--tls-port N] [--dns-server ADDR] [--mock-dns]
                      [--eab KID=KEY]
    prints "READY directory_url=... ca_file=... root_file=... pid=..." on
    stdout once Pebble answers, then runs until stdin reaches EOF or it gets
    SIGTERM/SIGINT, and stops Pebble. The parent closing the pipe (even by
    crashing) is what stops it, so no Pebble outlives a test.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

__all__ = ["Pebble", "free_port"]


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_dns_port():
    """A port free for both UDP and TCP on 127.0.0.1 (free_port checks TCP only,
    and loopback DNS traffic from other tests holds UDP ports)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def _dns_answers(port, timeout):
    """True when a DNS server on 127.0.0.1:port answers an A query over UDP."""
    query = b"\x4e\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x04test\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        try:
            u.sendto(query, ("127.0.0.1", port))
            reply = u.recv(512)
        except OSError:
            return False
    return reply[:2] == query[:2] and bool(reply[2] & 0x80)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _make_certs(d):
    """CA (P-256) and a listener cert for localhost/127.0.0.1 signed by it."""
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "7",
             "-subj", "/CN=hee test pebble listener CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", "ca.crt", cwd=d)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "pebble.key", cwd=d)
    _openssl("req", "-new", "-key", "pebble.key", "-subj", "/CN=localhost",
             "-out", "pebble.csr", cwd=d)
    with open(os.path.join(d, "pebble.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "pebble.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-sha256", "-days", "7", "-extfile", "pebble.ext",
             "-out", "pebble.crt", cwd=d)
    for n in ("pebble.csr", "pebble.ext"):
        os.unlink(os.path.join(d, n))
    for n in ("ca.key", "pebble.key"):
        os.chmod(os.path.join(d, n), 0o600)


class Pebble:
    def __init__(self, workdir=None, http_port=5002, tls_port=5001, always_valid=False,
                 nonce_reject=0, dns_server=None, mock_dns=False, eab_keys=None, env=None,
                 start_timeout=15.0, validity=None):
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="hee-pebble-")
        os.makedirs(self.workdir, exist_ok=True)
        self.http_port = http_port
        self.tls_port = tls_port
        self.always_valid = always_valid
        self.nonce_reject = nonce_reject
        self.dns_server = dns_server
        self.mock_dns = mock_dns
        self.dns_proc = None
        self.eab_keys = dict(eab_keys or {})
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.validity = validity
        self.port = None
        self.mgmt_port = None
        self.proc = None
        self.ca_file = os.path.join(self.workdir, "ca.crt")
        self._log_path = os.path.join(self.workdir, "pebble.log")

    @property
    def directory_url(self):
        return "https://127.0.0.1:%d/dir" % self.port

    @property
    def mgmt_url(self):
        return "https://127.0.0.1:%d" % self.mgmt_port

    def _ssl(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def _get(self, url, timeout=5.0):
        with urllib.request.urlopen(url, context=self._ssl(), timeout=timeout) as r:
            return r.read()

    def root_pem(self):
        return self._get(self.mgmt_url + "/roots/0").decode()

    def log_text(self):
        try:
            with open(self._log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _write_config(self):
        conf = {
            "listenAddress": "127.0.0.1:%d" % self.port,
            "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
            "certificate": os.path.join(self.workdir, "pebble.crt"),
            "privateKey": os.path.join(self.workdir, "pebble.key"),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
        }
        if self.eab_keys:
            conf["externalAccountMACKeys"] = self.eab_keys
        if self.validity:
            conf["certificateValidityPeriod"] = self.validity
        path = os.path.join(self.workdir, "pebble.json")
        with open(path, "w") as f:
            json.dump({"pebble": conf}, f, indent=2)
        return path

    def start(self):
        if not os.path.exists(self.ca_file):
            _make_certs(self.workdir)
        env = dict(os.environ)
        env["PEBBLE_VA_NOSLEEP"] = "1"
        env["PEBBLE_WFE_NONCEREJECT"] = str(self.nonce_reject)
        if self.always_valid:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        else:
            env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        env.update(self.extra_env)
        if self.mock_dns:
            self.dns_server = self._start_mock_dns()
        # free_port() only says a port was free: anything on the machine may
        # take it (a connect's source port) before Pebble binds it, and then
        # Pebble exits; new ports, a few times, before giving up.
        for attempt in range(3):
            self.port, self.mgmt_port = free_port(), free_port()
            while self.mgmt_port == self.port:
                self.mgmt_port = free_port()
            cmd = ["pebble", "-config", self._write_config()]
            if self.dns_server:
                cmd += ["-dnsserver", self.dns_server]
            log_from = self._log_size()
            log = open(self._log_path, "ab")
            try:
                self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            finally:
                log.close()
            try:
                self._wait_ready()
                return self
            except RuntimeError:  # stop() has run unless Pebble exited by itself
                if attempt == 2 or not self.proc or not self._port_taken(log_from):
                    raise

    def _log_size(self):
        try:
            return os.path.getsize(self._log_path)
        except OSError:
            return 0

    def _port_taken(self, log_from):
        """Did the process whose output starts at log_from fail to bind?"""
        return "address already in use" in self.log_text()[log_from:]

    def _start_mock_dns(self):
        # challtestsrv only logs a DNS listener that fails to bind (its port
        # taken meanwhile) and serves the rest, so ready means "answers a
        # query", and a port that never answers is given up for another.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            dns_port, mgmt = _free_dns_port(), free_port()
            log_from = self._log_size()
            log = open(self._log_path, "ab")
            try:
                self.dns_proc = subprocess.Popen(
                    ["pebble-challtestsrv", "-dns01", "127.0.0.1:%d" % dns_port, "-http01", "",
                     "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:%d" % mgmt,
                     "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                    cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            finally:
                log.close()
            attempt_end = min(deadline, time.monotonic() + 5.0)
            while time.monotonic() < attempt_end:
                if self.dns_proc.poll() is not None:
                    if not self._port_taken(log_from):
                        raise RuntimeError("pebble-challtestsrv exited:\n" + self.log_text())
                    break
                if _dns_answers(dns_port, 0.2):
                    return "127.0.0.1:%d" % dns_port
                time.sleep(0.05)
            self.dns_proc.kill()
            self.dns_proc.wait()
        self.dns_proc = None
        raise RuntimeError("pebble-challtestsrv not ready:\n" + self.log_text())

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pebble exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                self._get(self.directory_url, timeout=1.0)
                self._get(self.mgmt_url + "/roots/0", timeout=1.0)
                return
            except Exception as e:  # not listening yet
                last = e
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("pebble not ready after %.0fs (%s):\n%s" % (self.start_timeout, last, self.log_text()))

    def stop(self):
        for p in (self.proc, self.dns_proc):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.proc = self.dns_proc = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Run Pebble until stdin closes.")
    ap.add_argument("--always-valid", action="store_true")
    ap.add_argument("--nonce-reject", type=int, default=0)
    ap.add_argument("--http-port", type=int, default=5002)
    ap.add_argument("--tls-port", type=int, default=5001)
    ap.add_argument("--dns-server")
    ap.add_argument("--mock-dns", action="store_true")
    ap.add_argument("--eab", action="append", default=[], metavar="KID=KEY")
    args = ap.parse_args(argv)
    eab = dict(kv.split("=", 1) for kv in args.eab)
    p = Pebble(http_port=args.http_port, tls_port=args.tls_port, always_valid=args.always_valid,
               nonce_reject=args.nonce_reject, dns_server=args.dns_server, mock_dns=args.mock_dns,
               eab_keys=eab)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        p.start()
        root_file = os.path.join(p.workdir, "root.pem")
        with open(root_file, "w") as f:
            f.write(p.root_pem())
        print("READY directory_url=%s ca_file=%s root_file=%s pid=%d"
              % (p.directory_url, p.ca_file, root_file, p.proc.pid), flush=True)
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    except Exception as e:
        print("ERROR %s" % str(e).replace("\n", " | "), flush=True)
        p.stop()
        return 1
    p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
