#!/usr/bin/env python3
"""hooks_ssrf: webhook URLs pointing into private, loopback, link-local,
CGNAT, benchmarking and unspecified space — by literal, IPv4-mapped IPv6
and a DNS name (localhost) — are refused before any socket is opened, with
the reason in the attempt log. The daemon runs https-only with an
allow-list that covers none of them (only 127.0.0.2/32, the tracer's
positive control); where strace can attach, every connect(2) the daemon
makes is checked to go to loopback (DNS probes point at a closed loopback
port), and the control endpoint's connect must show up in the trace."""

import os
import re
import shutil
import signal
import subprocess
import time

from hooks_common import Hee, add_domain, attempts, create_endpoint, expect, free_port, hook_conf, wait_until
from heetest import expect_error, run, test

PORT = free_port()  # nothing listens here; and nothing may even try
CASES = [
    ("https://10.254.0.0/hook", "refused 10.254.0.0 port 443: private"),
    ("https://192.168.10.65/hook", "refused 192.168.10.65 port 443: private"),
    ("https://172.16.10.65/hook", "refused 172.16.10.65 port 443: private"),
    ("https://0.0.0.0:%d/hook" % PORT, "refused 0.0.0.0 port %d: unspecified" % PORT),
    ("https://127.0.0.1:%d/hook" % PORT, "refused 127.0.0.1 port %d: loopback" % PORT),
    ("https://169.254.45.1/hook", "refused 169.254.45.1 port 443: link-local"),
    ("https://100.100.0.0/hook", "refused 100.100.0.0 port 443: cgnat"),
    ("https://198.18.0.0/hook", "refused 198.18.0.0 port 443: benchmarking"),
    ("https://[::1]:%d/hook" % PORT, "refused ::1 port %d: loopback" % PORT),
    ("https://[::ffff:127.0.0.1]:%d/hook" % PORT, "refused ::ffff:127.0.0.1 port %d: loopback via ipv4-mapped" % PORT),
    ("https://localhost:%d/hook" % PORT, "port %d: loopback" % PORT),
]

H = None
P = None


class ConnectTrace:
    """strace -f on every thread of the daemon, logging connect(2)."""

    def __init__(self, pid):
        self.path = os.path.join(H.dir, "connect.trace")
        self.proc = None
        if not shutil.which("strace"):
            return
        tids = os.listdir("/proc/%d/task" % pid)
        args = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", self.path]
        for t in tids:
            args += ["-p", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            print("note: strace cannot attach here (%s); connect(2) not traced"
                  % self.proc.stderr.read().decode(errors="replace").strip()[:200])
            self.proc = None

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with open(self.path) as f:
            return f.read()


def non_loopback_connects(trace):
    bad = []
    for line in trace.splitlines():
        if "connect(" not in line:
            continue
        m4 = re.search(r'inet_addr\("([^"]+)"\)', line)
        m6 = re.search(r'inet_pton\(AF_INET6, "([^"]+)"', line)
        if m4 and not m4.group(1).startswith("127."):
            bad.append(line)
        elif m6 and m6.group(1) not in ("::1",) and not m6.group(1).startswith("::ffff:127."):
            bad.append(line)
    return bad


@test
def http_refused_at_creation_when_https_only():
    expect_error(P.post("/v1/webhook-endpoints", {"url": "http://example.com/hook"}), 400, "invalid")


@test
def private_targets_refused_before_connect():
    trace = ConnectTrace(H.proc.pid)
    eps = [(create_endpoint(P, url, ["domain.created"]), url, why) for url, why in CASES]
    control = create_endpoint(P, "https://127.0.0.2:%d/hook" % PORT, ["domain.created"])
    add_domain(P, "ssrf.example.com")
    for ep, url, why in eps:
        got = wait_until(lambda: attempts(P, ep["id"]), timeout=15, what="an attempt for " + url)
        a = got[-1]
        expect(a["statusCode"] is None, "%s: no HTTP response expected: %r" % (url, a))
        expect(a["error"].startswith("ssrf: ") and why in a["error"], "%s: reason %r" % (url, a["error"]))
    ctl = wait_until(lambda: attempts(P, control["id"]), timeout=15, what="the control attempt")[-1]
    expect("ssrf" not in (ctl["error"] or ""), "the allow-listed control was not refused: %r" % ctl)
    text = trace.stop()
    if text is not None:
        expect('inet_addr("127.0.0.2")' in text, "the tracer saw the control endpoint's connect")
        bad = non_loopback_connects(text)
        expect(not bad, "connect(2) to a non-loopback address:\n" + "\n".join(bad[:10]))
        # The loopback-class cases all dial PORT: only the control may have.
        port_lines = [ln for ln in text.splitlines() if "htons(%d)" % PORT in ln]
        expect(port_lines and all('"127.0.0.2"' in ln for ln in port_lines),
               "only the allow-listed control dialled port %d:\n%s" % (PORT, "\n".join(port_lines[:10])))
    logs = H.stderr_text()
    expect("msg=ssrf.refused addr=10.254.0.0" in logs, "refusals are logged")


def main():
    global H, P
    conf = hook_conf(allow_private="127.0.0.2/32", allow_http="no")
    H = Hee(conf)
    P = H.new_project("acme")

    def teardown():
        H.stop()
        H.cleanup()

    run(teardown=teardown)


if __name__ == "__main__":
    main()
