"""proxy: scenarios 1, 2 and the connection half of 4 — the same wrk and
idle-connection clients against nginx, HAProxy, Caddy (static certificate)
and Hee (certificate from its built-in CA), all in front of the one upstream.

Static peers serve an ECDSA P-256 leaf from the bench CA; Hee serves an
ECDSA P-256 leaf from its own CA, issued for bench.test before measuring.
"""

import os
import resource
import shutil
import signal
import subprocess
import time

from . import proc as P
from .load import SNI, idle_conns, tls_facts, tls_get, wrk
from .systems import UPSTREAM, Caddy, Haproxy, HaproxyPinned, Hee, HeePinned, Nginx, NginxPinned
from .util import Unavailable, log

PEER_CLASSES = {"nginx": Nginx, "haproxy": Haproxy, "caddy": Caddy, "nginx-pinned": NginxPinned,
                "haproxy-pinned": HaproxyPinned}
HEE_CLASSES = {"hee": Hee, "hee-pinned": HeePinned}
# Keep-alive and handshakes also run nginx, HAProxy and Hee with each worker
# pinned to its own CPU: the aims are judged on the stock configurations
# (../shared/peers, Hee's defaults), and the pinned rows show what pinning
# does to each on these two shared cores (it helps or hurts by scenario).
PINNED = ("nginx-pinned", "haproxy-pinned", "hee-pinned")
KA_SYSTEMS = ("nginx", "haproxy", "caddy", "hee") + PINNED


def start_hee_proxy(ctx, tag, cls=Hee, **kw):
    if ctx.edge_na:
        raise Unavailable(ctx.edge_na)
    h = cls(ctx, **kw)
    h.start(tag)
    try:
        h.api.setup_project()
        h.api.add_domain(SNI)
        r = tls_get(h.port, SNI, timeout=30)
        if r["code"] != 200:
            raise Unavailable(f"hee did not serve {SNI}: {r['error'] or r['code']}")
    except BaseException:
        h.stop()
        raise
    return h


def start_system(ctx, name, tag):
    if name in HEE_CLASSES:
        return start_hee_proxy(ctx, tag, HEE_CLASSES[name])
    s = PEER_CLASSES[name](ctx)
    s.start(tag)
    r = tls_get(s.port, SNI, timeout=10)
    if r["code"] != 200:
        s.stop()
        raise Unavailable(f"{name} sanity request failed: {r['error'] or r['code']}")
    return s


def start_all(ctx, names, tag, keys):
    """Starts each system; one that cannot start gets n/a in every row of keys."""
    up = {}
    for n in names:
        try:
            up[n] = start_system(ctx, n, tag)
            if n not in ctx.tls_checked:
                ctx.tls_checked.add(n)
                ctx.results.note(f"TLS as negotiated with {n}: {tls_facts(up[n].port, SNI)}")
        except (Unavailable, RuntimeError, OSError) as e:
            log(f"  {n}: not measured: {e}")
            for key, label, dec in keys:
                ctx.results.na(key, label, n, str(e).splitlines()[0][:200], dec)
    return up


def _children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _wrk_into(ctx, system, pid, url, run, extra=(), tag="ka"):
    """One wrk load; returns wrk's figures and the proxy's CPU per request.
    Also leaves in r the upstream's and the client's CPU per request
    ("up_cpu_us", "client_cpu_us"): all three share the two cores, so
    their sum is what one request costs the machine."""
    c0, u0, w0 = P.cpu_seconds(pid), P.cpu_seconds(ctx.upstream.pid), _children_cpu()
    r = wrk(ctx, url, ctx.p.duration, conns=64, extra=extra, save_as=f"r{run}-{system}-{tag}.txt")
    c1, u1, w1 = P.cpu_seconds(pid), P.cpu_seconds(ctx.upstream.pid), _children_cpu()
    n = r["requests"]
    cpu_us = (c1 - c0) * 1e6 / n if n else None
    r["up_cpu_us"] = (u1 - u0) * 1e6 / n if n and pid != ctx.upstream.pid else None
    r["client_cpu_us"] = (w1 - w0) * 1e6 / n if n else None
    return r, cpu_us


def ka_keys(ctx):
    d = ctx.p.duration
    return [("ka_rps", f"1. Keep-alive HTTPS requests/s (wrk -t1 -c64 -d{d}s; direct = plain HTTP to the upstream, "
                       "the ceiling)", 0),
            ("ka_p99_ms", "1. Keep-alive p99 latency, ms", 2),
            ("ka_cpu_us", "1. Proxy CPU per keep-alive request, µs (process tree utime+stime; direct: the "
                          "upstream's own)", 1),
            ("ka_errors", "1. Keep-alive wrk errors (socket + non-2xx)", 0),
            ("ka_up_cpu_us", "1. … the upstream's CPU per request meanwhile, µs", 1),
            ("ka_client_cpu_us", "1. … the client's (wrk) CPU per request meanwhile, µs", 1),
            ("ka_box_cpu_us", "1. … proxy + upstream + client CPU per request: what one request costs the "
                              "two shared cores, µs", 1)]


def keepalive(ctx, systems=KA_SYSTEMS):
    keys = ka_keys(ctx)
    R = ctx.results
    ctx.results.declare(keys)
    up = start_all(ctx, systems, "ka", keys)
    try:
        for s in up.values():   # fill upstream pools, let Go warm up
            wrk(ctx, f"https://{SNI}:{s.port}/", 1, conns=64)
        for run in range(1, ctx.p.runs + 1):
            log(f"keepalive run {run}/{ctx.p.runs}")
            if ctx.p.direct:
                r, cpu = _wrk_into(ctx, "direct", ctx.upstream.pid, f"http://{UPSTREAM}/", run)
                _record_ka(R, keys, "direct", r, cpu)
                time.sleep(1)
            # Each run starts with the next system: a system measured right
            # after another one's load (Caddy's GC, say) is not always the same.
            names = list(up)
            k = (run - 1) % len(names) if names else 0
            for n in names[k:] + names[:k]:
                s = up[n]
                r, cpu = _wrk_into(ctx, n, s.pid, f"https://{SNI}:{s.port}/", run)
                _record_ka(R, keys, n, r, cpu)
                time.sleep(1)
    finally:
        for s in up.values():
            s.stop()


def _record_ka(R, keys, system, r, cpu):
    (k1, l1, d1), (k2, l2, d2), (k3, l3, d3), (k4, l4, d4), (k5, l5, d5), (k6, l6, d6), (k7, l7, d7) = keys
    R.add(k1, l1, system, r["rps"], d1)
    R.add(k2, l2, system, r["p99_ms"], d2)
    R.add(k3, l3, system, cpu, d3)
    R.add(k4, l4, system, r["errors"], d4)
    up, client = r.get("up_cpu_us"), r.get("client_cpu_us")
    R.add(k5, l5, system, up, d5)
    R.add(k6, l6, system, client, d6)
    if cpu is not None and client is not None:
        R.add(k7, l7, system, cpu + (up or 0) + client, d7)
    log(f"  {system}: {r['rps']:,.0f} req/s p99 {r['p99_ms']:.2f} ms cpu "
        f"{cpu if cpu is None else round(cpu, 1)} us/req errors {r['errors']}")


def handshake(ctx, systems=KA_SYSTEMS):
    d = ctx.p.duration
    keys = [("hs_rps", f"2. Full TLS handshakes/s (new connection per request: wrk -t1 -c64 -d{d}s "
                       "-H 'Connection: close')", 0),
            ("hs_cpu_us", "2. Proxy CPU per handshake (+ its request), µs", 1),
            ("hs_errors", "2. Handshake wrk errors (socket + non-2xx)", 0)]
    R = ctx.results
    up = start_all(ctx, systems, "hs", keys)
    ctx.results.declare(keys)
    try:
        for run in range(1, ctx.p.runs + 1):
            log(f"handshake run {run}/{ctx.p.runs}")
            for n, s in up.items():
                r, cpu = _wrk_into(ctx, n, s.pid, f"https://{SNI}:{s.port}/", run,
                                   extra=("-H", "Connection: close"), tag="hs")
                R.add(keys[0][0], keys[0][1], n, r["rps"], 0)
                R.add(keys[1][0], keys[1][1], n, cpu, 1)
                R.add(keys[2][0], keys[2][1], n, r["errors"], 0)
                log(f"  {n}: {r['rps']:,.0f} handshakes/s cpu {cpu if cpu is None else round(cpu)} us errors "
                    f"{r['errors']}")
                time.sleep(2)   # TIME_WAIT and accept queues settle
    finally:
        for s in up.values():
            s.stop()


def idle_memory(ctx, systems=("nginx", "haproxy", "caddy", "hee")):
    n_idle = ctx.p.idle_n
    keys = [("rss_idle_kb", "4. RSS idle (after one request), MB", 1),
            ("pss_idle_kb", "4. PSS idle (shared pages split; nginx = master + 2 workers), MB", 1),
            ("rss_idle10k_kb", f"4. RSS with {n_idle:,} idle TLS connections, MB", 1),
            ("kb_per_conn", "4. Memory per idle TLS connection (RSS growth ÷ connections), KB", 1),
            ("idle_ok", f"4. Idle TLS connections held (of {n_idle:,})", 0)]
    R = ctx.results
    R.declare(keys)
    for run in range(1, ctx.p.runs + 1):
        log(f"idle-connection memory run {run}/{ctx.p.runs}")
        for n in systems:
            up = start_all(ctx, [n], f"idle{run}", keys)
            if n not in up:
                continue
            s = up[n]
            try:
                time.sleep(2)
                idle, pss = P.rss_kb(s.pid), P.pss_kb(s.pid)
                ok, rss, line = idle_conns(ctx, s.port, n_idle, s.pid, P.rss_kb)
                R.add(keys[0][0], keys[0][1], n, idle / 1024, 1)
                R.add(keys[1][0], keys[1][1], n, pss / 1024, 1)
                R.add(keys[2][0], keys[2][1], n, rss / 1024, 1)
                if ok:
                    R.add(keys[3][0], keys[3][1], n, (rss - idle) / ok, 1)
                R.add(keys[4][0], keys[4][1], n, ok, 0)
                log(f"  {n}: idle {idle} KB, with {ok}/{n_idle} conns {rss} KB ({line})")
            finally:
                s.stop()


def profile(ctx):
    """perf record (cpu-clock, 999 Hz) of Hee, and of nginx for comparison,
    under the keep-alive and the handshake load; writes perf-SYSTEM-LOAD.txt
    (time by library, then by symbol) to the results directory. Not part of
    'all': run `bench/run profile`."""
    if not shutil.which("perf"):
        ctx.results.note("profile: perf is not installed")
        return
    for name in ("hee", "nginx"):
        try:
            s = start_system(ctx, name, "prof")
        except (Unavailable, RuntimeError, OSError) as e:
            ctx.results.note(f"profile: {name} not measured: {e}")
            continue
        try:
            for tag, extra in (("keepalive", ()), ("handshake", ("-H", "Connection: close"))):
                _perf_one(ctx, name, s, tag, extra)
        finally:
            s.stop()


def _perf_one(ctx, name, s, tag, extra):
    data = os.path.join(ctx.tmp, f"perf-{name}-{tag}.data")
    pids = ",".join(str(p) for p in sorted(P.tree_pids(s.pid)))
    rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-p", pids, "-o", data,
                            "--", "sleep", str(ctx.p.duration)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    r = wrk(ctx, f"https://{SNI}:{s.port}/", ctx.p.duration, extra=extra, save_as=f"prof-{name}-{tag}.txt")
    try:
        rec.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(rec.pid, signal.SIGKILL)
        rec.wait()
    parts = []
    for sort, lim in (("dso", "0.5"), ("dso,sym", "0.7")):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                              "--percent-limit", lim], capture_output=True, text=True, timeout=120)
        parts.append("\n".join(x for x in rep.stdout.splitlines() if x and not x.startswith("#")))
    path = os.path.join(ctx.out, f"perf-{name}-{tag}.txt")
    with open(path, "w") as f:
        f.write(f"# {name} under wrk {tag}: {r['rps']:,.0f} req/s\n# by library\n{parts[0]}\n"
                f"# by symbol\n{parts[1]}\n")
    top = "; ".join(" ".join(x.split()) for x in parts[0].splitlines()[:6])
    ctx.results.note(f"profile, {name} under {tag} load ({r['rps']:,.0f}/s): {top} — {os.path.basename(path)}")
    log(f"  profile {name} {tag}: {top}")


def selftest(ctx):
    """Two seconds of keep-alive against nginx and Hee: proves the harness."""
    ctx.p.duration, ctx.p.runs, ctx.p.direct = 2, 1, False
    keepalive(ctx, systems=("nginx", "hee"))
    bad = []
    for n in ("nginx", "hee"):
        v = ctx.results.med("ka_rps", n)
        if not v:
            r = ctx.results.rows.get("ka_rps")
            bad.append(f"{n}: {r.na.get(n, 'no requests') if r else 'no result'}")
    return bad

