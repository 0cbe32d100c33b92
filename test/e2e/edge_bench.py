"""edge_bench: bounded loopback measurements of the edge against an nginx
TLS proxy on the same box, the same way /work/shared/peers/run.sh measures
peers. Not a ctest (it loads the machine for about a minute); run by hand:

    HEE_BIN=build/hee PYTHONPATH=test/lib python3 test/e2e/edge_bench.py [--quick] [--runs N]

Prints, for hee and nginx: keep-alive req/s (wrk -t1 -c64 -d10s), proxy CPU
per keep-alive request (utime+stime of the process tree / requests), full
TLS handshakes/s and CPU per handshake+request (Connection: close), RSS per
idle TLS connection (tools/idle_conns.py, 10,000 connections), and the same
for "direct" (wrk straight to the upstream). Needs nginx and wrk
(apt-get install -y nginx wrk), unshare (to point bench.test at 127.0.0.1
in a private mount namespace; /etc/hosts itself is never touched).
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heetest import Hee, free_port  # noqa: E402
from edge_common import TestCA, seed_cert, seed_domain, seed_project  # noqa: E402

PEERS = "/work/shared/peers"
TICK = os.sysconf("SC_CLK_TCK")


def tree_pids(root):
    pids = [root]
    try:
        out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout
        for p in out.split():
            pids += tree_pids(int(p))
    except Exception:
        pass
    return pids


def cpu_ticks(root):
    t = 0
    for p in tree_pids(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                parts = f.read().rsplit(")", 1)[1].split()
            t += int(parts[11]) + int(parts[12])
        except OSError:
            pass
    return t


def rss_kb(root):
    t = 0
    for p in tree_pids(root):
        try:
            with open("/proc/%d/status" % p) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        t += int(ln.split()[1])
        except OSError:
            pass
    return t


def render(src, dst, **kw):
    with open(src) as f:
        text = f.read()
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    with open(dst, "w") as f:
        f.write(text)


class Nginx:
    def __init__(self, conf_in, d, **kw):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        conf = os.path.join(d, "nginx.conf")
        render(conf_in, conf, DIR=d, **kw)
        self.p = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)
        self.pid = self.p.pid

    def stop(self):
        try:
            self.p.send_signal(signal.SIGQUIT)
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


def wrk(url, hosts, seconds, extra=()):
    cmd = "mount --bind %s /etc/hosts && exec wrk -t1 -c64 -d%ds %s %s" % (hosts, seconds, " ".join(extra), url)
    out = subprocess.run(["unshare", "-m", "bash", "-c", cmd], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return int(m.group(1)) if m else 0, float(rps.group(1)) if rps else 0.0, \
        (errs.group(1) if errs else "0") + ("; socket " + sock.group(1) if sock else ""), out


def measure(name, pid, url, hosts, seconds, extra=()):
    c0 = cpu_ticks(pid)
    n, rps, errs, out = wrk(url, hosts, seconds, extra)
    c1 = cpu_ticks(pid)
    us = (c1 - c0) / TICK * 1e6 / n if n else 0
    return {"name": name, "requests": n, "rps": rps, "cpu_us": us, "errors": errs}


def idle(pid, port, n):
    r0 = rss_kb(pid)
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(PEERS, "tools/idle_conns.py"), "--port", str(port),
                          "--sni", "bench.test", "--n", str(n), "--parallel", "128", "--hold", "120"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    time.sleep(3)
    r1 = rss_kb(pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    ok = int(re.search(r"ok=(\d+)", line).group(1)) if "ok=" in line else 0
    return r0, r1, ok, (r1 - r0) / max(ok, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--skip-nginx", action="store_true")
    ap.add_argument("--only", default="", help="comma list of: load,idle (default both)")
    a = ap.parse_args()
    secs = 3 if a.quick else 10
    tmp = tempfile.mkdtemp(prefix="edge-bench-")
    up_port = free_port()
    upstream = Nginx(os.path.join(PEERS, "upstream/nginx.conf.in"), os.path.join(tmp, "upstream"),
                     UPSTREAM_PORT=up_port)
    ca = TestCA(os.path.join(tmp, "ca"))
    chain, key = ca.issue("bench.test")
    certs = os.path.join(tmp, "certs")
    os.makedirs(certs)
    open(os.path.join(certs, "static.crt"), "w").write(chain)
    open(os.path.join(certs, "static.key"), "w").write(key)
    hosts = os.path.join(tmp, "hosts")
    open(hosts, "w").write("127.0.0.1 localhost bench.test\n")
    h = Hee(workers=2, conf={"log": {"level": "warn", "access_log": "off"},
                             "edge": {"idle_timeout": "300s", "header_timeout": "300s"}})
    pid = seed_project(h, "bench", "http://127.0.0.1:%d" % up_port)
    seed_domain(h, "bench.test", pid)
    seed_cert(h, "bench.test", chain, key)
    ng = None
    if not a.skip_nginx:
        ng_port = free_port()
        ng = Nginx(os.path.join(PEERS, "conf/nginx.conf.in"), os.path.join(tmp, "nginx"), PORT=ng_port,
                   CERTS=certs, UPSTREAM="127.0.0.1:%d" % up_port)
    rows = []
    try:
        time.sleep(0.5)
        only = set(a.only.split(",")) if a.only else {"load", "idle"}
        if "load" not in only:
            a.runs = 0
        else:
            rows.append(measure("direct", upstream.pid, "http://127.0.0.1:%d/" % up_port, hosts, secs))
        for r in range(a.runs):
            rows.append(measure("hee keep-alive", h.proc.pid, "https://bench.test:%d/" % h.tls_port, hosts, secs))
            if ng:
                rows.append(measure("nginx keep-alive", ng.pid, "https://bench.test:%d/" % ng_port, hosts, secs))
            rows.append(measure("hee handshake", h.proc.pid, "https://bench.test:%d/" % h.tls_port, hosts, secs,
                                ["-H", "'Connection: close'"]))
            if ng:
                rows.append(measure("nginx handshake", ng.pid, "https://bench.test:%d/" % ng_port, hosts, secs,
                                    ["-H", "'Connection: close'"]))
        for r in rows:
            print("%-18s %9d req %10.0f req/s %8.1f us CPU/req  non-2xx/errors: %s"
                  % (r["name"], r["requests"], r["rps"], r["cpu_us"], r["errors"]), flush=True)
        n = a.idle if not a.quick else 1000
        if "idle" not in only:
            return
        r0, r1, ok, per = idle(h.proc.pid, h.tls_port, n)
        print("hee idle TLS: RSS %d -> %d KB with %d connections: %.2f KB per connection" % (r0, r1, ok, per),
              flush=True)
        if ng:
            r0, r1, ok, per = idle(ng.pid, ng_port, n)
            print("nginx idle TLS: RSS %d -> %d KB with %d connections: %.2f KB per connection" % (r0, r1, ok, per),
                  flush=True)
    finally:
        if ng:
            ng.stop()
        upstream.stop()
        h.stop()


if __name__ == "__main__":
    main()
