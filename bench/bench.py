#!/usr/bin/python3
"""Hee side by side with nginx, HAProxy and Caddy, on loopback.

Run through bench/run (which installs the packages and builds Hee first);
`bench/run --help` lists the options. Prints ONE Markdown table on stdout;
raw figures, wrk output and server logs go to bench/results/<UTC time>/.
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib import control, ondemand, proxy  # noqa: E402
from benchlib import proc as P  # noqa: E402
from benchlib.report import Results  # noqa: E402
from benchlib.systems import PORTS, Upstream, probe_hee  # noqa: E402
from benchlib.util import log, mkdir  # noqa: E402

SCENARIOS = {
    # name: (what it measures, functions)
    "keepalive": ("1. keep-alive requests/s, p99, CPU per request (+ direct ceiling)", [proxy.keepalive]),
    "handshake": ("2. full TLS handshakes/s and CPU per handshake", [proxy.handshake]),
    "ondemand": ("3. first request for never-seen names, Hee and Caddy against one Pebble", [ondemand.ondemand]),
    "memory": ("4. RSS idle, per idle TLS connection, per cached certificate",
               [proxy.idle_memory, ondemand.cert_memory]),
    "startup": ("5. Hee start-up with 100,000 stored certificates", [control.startup]),
    "control": ("6. registration, resolve with 1,000,000 domains, probes/s, webhook deliveries",
                [control.resolve, control.probes, control.contention, control.contention_api, control.webhooks,
                 control.contention_hooks]),
}
# finer-grained names, for `bench/run idle` and the like
PARTS = {"idle": [proxy.idle_memory], "certs": [ondemand.cert_memory], "resolve": [control.resolve],
         "probes": [control.probes], "contention": [control.contention, control.contention_api, control.contention_hooks],
         "contention_api": [control.contention_api], "webhooks": [control.webhooks], "profile": [proxy.profile]}

FULL = dict(runs=3, duration=10, idle_n=10000, hee_certs=10000, caddy_certs=1000, cert_runs=None, od_seq=20,
            od_conc=50, startup_certs=100000, resolve_domains=1000000, reg_n=20000, probe_n=10000,
            probe_timeout=180, sched_domains=1000000, contend_domains=300000, hook_n=1000, hook_timeout=180)
QUICK = dict(FULL, runs=1, duration=3, idle_n=1000, hee_certs=500, caddy_certs=50, startup_certs=10000,
             resolve_domains=100000, reg_n=2000, probe_n=1000, hook_n=200, hook_timeout=60, probe_timeout=60,
             sched_domains=100000, contend_domains=30000)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Scenarios: " + "; ".join(f"{k}: {v[0]}" for k, v in SCENARIOS.items()) +
                                        ". Parts: " + ", ".join(PARTS) + ".")
    ap.add_argument("scenarios", nargs="?", default="all",
                    help="comma-separated scenarios or parts (default: all)")
    ap.add_argument("--quick", action="store_true", help="short smoke run: 1 run, 3 s, smaller counts")
    ap.add_argument("--selftest", action="store_true", help="2 s keep-alive against nginx and Hee only")
    ap.add_argument("--hee-bin", default=os.path.join(os.path.dirname(HERE), "build-bench-rel", "hee"),
                    help="the hee binary (default: build-bench-rel/hee, which bench/run builds)")
    ap.add_argument("--out", help="results directory (default bench/results/<UTC time>)")
    helps = {"runs": "repetitions of every measurement", "duration": "seconds per wrk run",
             "idle_n": "idle TLS connections held for the memory test",
             "hee_certs": "certificates Hee issues for the cache-memory test",
             "caddy_certs": "certificates Caddy issues from Pebble for the cache-memory test",
             "od_seq": "never-seen names asked one after another", "od_conc": "never-seen names asked at once",
             "startup_certs": "certificates seeded for the start-up test",
             "resolve_domains": "domains seeded for the resolve test",
             "reg_n": "domains registered through the API per run", "probe_n": "pending domains to verify per run",
             "probe_timeout": "seconds to wait for them",
             "sched_domains": "pending domains for the scheduler-memory measurement",
             "contend_domains": "pending domains swept while the edge is under load (contention)", "hook_n": "registrations whose webhooks are timed",
             "hook_timeout": "seconds to wait for the deliveries"}
    for k, v in FULL.items():
        if k != "cert_runs":
            ap.add_argument("--" + k.replace("_", "-"), type=type(v), dest=k, default=None, metavar="N",
                            help=f"{helps[k]} (default {v:,}; --quick {QUICK[k]:,})")
    ap.add_argument("--cert-runs", type=int, default=None, metavar="N",
                    help="runs of the certificate-cache test (default: --runs)")
    ap.add_argument("--no-direct", dest="direct", action="store_false", help="skip the direct-to-upstream ceiling")
    ap.add_argument("--no-setup", action="store_true", help="(bench/run) skip apt installs")
    ap.add_argument("--no-build", action="store_true", help="(bench/run) skip building Hee")
    a = ap.parse_args(argv)
    base = QUICK if a.quick else FULL
    for k, v in base.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    if a.cert_runs is None:
        a.cert_runs = a.runs
    if not (1 <= a.runs <= 10 and 1 <= a.duration <= 60 and 1 <= a.idle_n <= 19000):
        ap.error("--runs 1..10, --duration 1..60, --idle-n 1..19000 (fd hard limit 20000)")
    if a.hee_certs > 19000 or a.caddy_certs > 5000 or a.resolve_domains > 5000000:
        ap.error("--hee-certs ≤ 19000 (cert_cache_size), --caddy-certs ≤ 5000, --resolve-domains ≤ 5,000,000")
    return a


class Ctx:
    def __init__(self, a):
        self.p = a
        self.home = HERE
        self.repo = os.path.dirname(HERE)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.tmp = tempfile.mkdtemp(prefix="hee-bench.")
        default_out = os.path.join(self.tmp, "out") if a.selftest else os.path.join(HERE, "results", stamp)
        self.out = mkdir(a.out or default_out)
        self.procs = P.Procs()
        self.results = Results()
        self.hee_bin = os.path.abspath(a.hee_bin)
        self.hee_missing = ""    # why Hee is n/a everywhere ('' = it starts)
        self.edge_missing = ""   # why Hee is n/a where its TLS edge is needed
        self.tls_checked = set()
        self.certs = os.path.join(self.tmp, "certs")
        subprocess.run(["bash", os.path.join(HERE, "tools", "gencerts.sh"), self.certs], check=True, timeout=60)
        self.hosts_file = os.path.join(self.tmp, "hosts")
        with open(self.hosts_file, "w") as f:
            f.write("127.0.0.1 localhost bench.test\n::1 localhost ip6-localhost\n")
        self.upstream = None

    @property
    def edge_na(self):
        return self.hee_missing or self.edge_missing


def versions(ctx):
    def sh(cmd):
        # Only a command that succeeded speaks: an error text (no git, a
        # package not installed) must not end up in the table's header.
        try:
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        out = r.stdout.strip()
        return out.splitlines()[0] if r.returncode == 0 and out else "?"
    cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    fmt = "-f='${Version}'"
    pk = " ".join(f"{p} {sh(f'dpkg-query -W {fmt} {p}')}" for p in
                  ("nginx", "haproxy", "caddy", "pebble", "wrk", "knot", "openssl", "libssl3"))
    lines = [f"date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}",
             f"machine: {os.cpu_count()} × {cpu}, {mem} RAM, {platform.system()} {platform.release()}, "
             f"Debian {sh('cat /etc/debian_version')}",
             f"packages: {pk}",
             f"hee: {sh(ctx.hee_bin + ' version')} ({ctx.hee_bin}), git {sh('git -C ' + ctx.repo + ' rev-parse --short HEAD')}"
             f"{' + uncommitted changes' if sh('git -C ' + ctx.repo + ' status --porcelain --untracked-files=no') != '?' else ''}",
             f"params: runs={ctx.p.runs} duration={ctx.p.duration}s idle_n={ctx.p.idle_n} "
             f"hee_certs={ctx.p.hee_certs} caddy_certs={ctx.p.caddy_certs} cert_runs={ctx.p.cert_runs} "
             f"startup_certs={ctx.p.startup_certs} resolve_domains={ctx.p.resolve_domains} reg_n={ctx.p.reg_n} "
             f"probe_n={ctx.p.probe_n} hook_n={ctx.p.hook_n}",
             f"command: bench/run {' '.join(sys.argv[1:])}"]
    with open(os.path.join(ctx.out, "versions.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def selected(a):
    if a.selftest:
        return [("selftest", [proxy.selftest])]
    names = list(SCENARIOS) if a.scenarios == "all" else a.scenarios.split(",")
    out = []
    for n in names:
        if n in SCENARIOS:
            out.append((n, SCENARIOS[n][1]))
        elif n in PARTS:
            out.append((n, PARTS[n]))
        else:
            sys.exit(f"bench/run: unknown scenario {n!r}; known: {', '.join(list(SCENARIOS) + list(PARTS))}")
    return out


def report(ctx, head, total):
    times = ", ".join(f"{k} {v} s" for k, v in ctx.results.scenario_secs.items())
    ctx.results.note(f"Wall time: {total / 60:.1f} min ({times}).")
    md = ctx.results.markdown("\n".join(f"{x}  " for x in head[:4]) + "\n")
    with open(os.path.join(ctx.out, "summary.md"), "w") as f:
        f.write(md)
    ctx.results.dump(os.path.join(ctx.out, "raw.json"))
    return md


def main():
    a = parse_args(sys.argv[1:])
    if a.selftest:
        missing = [t for t in ("nginx", "wrk") if not shutil.which(t)]
        if missing:
            print(f"skipped: {' and '.join(missing)} not installed")
            return 0
    busy = [f"{k}:{v}" for k, v in PORTS.items() if P.port_open(v)]
    if busy:
        sys.exit(f"bench/run: ports already in use on 127.0.0.1: {', '.join(busy)}")
    chosen = selected(a)

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    ctx = Ctx(a)
    rc, head = 0, []
    t_start = time.monotonic()
    try:
        head = versions(ctx)
        for line in head:
            log(line)
        ctx.upstream = Upstream(ctx).start("main")
        ctx.hee_missing, ctx.edge_missing = probe_hee(ctx)
        if ctx.hee_missing or ctx.edge_missing:
            log(f"Hee is n/a where it needs {'anything' if ctx.hee_missing else 'the edge'}: "
                f"{ctx.hee_missing or ctx.edge_missing}")
        for name, fns in chosen:
            t0 = time.monotonic()
            log(f"=== {name} ===")
            for fn in fns:
                if name == "selftest":
                    bad = fn(ctx)
                    rc = 1 if bad else 0
                    print(("selftest FAILED: " + "; ".join(bad)) if bad else "selftest passed")
                else:
                    fn(ctx)
            ctx.results.scenario_secs[name] = round(time.monotonic() - t0)
            log(f"=== {name} done in {time.monotonic() - t0:.0f} s ===")
    except KeyboardInterrupt:
        log("interrupted; stopping everything this run started")
        rc = 130
    finally:
        ctx.procs.stop_all()
        md = report(ctx, head, time.monotonic() - t_start)
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    if not a.selftest:
        print(md)
        log(f"results: {ctx.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
