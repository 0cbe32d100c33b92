"""control: scenarios 5 and 6 — Hee only, no peer does these.

5  start-up time with N stored certificates (seeded straight into SQLite;
   every row holds the same wildcard *.seed.test leaf, so serving any seeded
   name works), against an empty store: it should not grow with N.
6  API registration rate; /v1/edge/resolve requests/s and p99 with 1,000,000
   stored domains; DNS verification probes/s against a local Knot; webhook
   deliveries/s and change-to-delivery latency to a local receiver.
"""

import os
import shutil
import sqlite3
import time

from . import proc as P
from .hee import SLUG, add_domains_parallel, open_store, project_id, seed_domains
from .load import tls_get, wrk
from .systems import PORTS, Hee, Knot
from .util import Unavailable, log, median, percentile, read


def _na(ctx, keys, reason):
    for k, label, dec in keys:
        ctx.results.na(k, label, "hee", reason, dec)


def _guard(ctx, keys, fn):
    """Runs fn(); a missing feature or a failure becomes n/a in keys."""
    ctx.results.declare(keys)
    if ctx.hee_missing:
        _na(ctx, keys, ctx.hee_missing)
        return
    try:
        fn()
    except (Unavailable, RuntimeError, OSError, sqlite3.Error) as e:
        log(f"  hee: {e}")
        _na(ctx, keys, str(e).splitlines()[0][:200])


def _fresh_store(ctx, tag):
    """A data dir with the schema, the local CA and the bench project."""
    h = Hee(ctx)
    h.start(tag)
    try:
        h.api.setup_project()
    finally:
        h.stop()
    return h.data_dir


# ---- 5. start-up ---------------------------------------------------------------

def startup(ctx):
    n = ctx.p.startup_certs
    keys = [("start_empty_ms", "5. Hee start-up to ready (API /readyz and TLS port), empty store, ms", 0),
            ("start_full_ms", f"5. Hee start-up to ready with {n:,} stored certificates, ms", 0),
            ("start_first_ms", "5. … then the first HTTPS request for a stored name, ms", 1),
            ("start_rss_mb", f"5. Hee RSS right after start-up with {n:,} stored certificates, MB", 1)]
    _guard(ctx, keys, lambda: _startup(ctx, keys, n))


def _startup(ctx, keys, n):
    R = ctx.results
    empty = _fresh_store(ctx, "st-empty")
    full = _fresh_store(ctx, "st-full")
    db = open_store(full)
    chain = read(os.path.join(ctx.certs, "wild.crt"))
    key = read(os.path.join(ctx.certs, "wild.key")).encode()
    t0 = time.monotonic()
    seed_domains(db, project_id(db), [f"c{i}.seed.test" for i in range(n)], with_certs=(chain, key))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = sum(os.path.getsize(os.path.join(full, f)) for f in os.listdir(full)) / 1e6
    log(f"  seeded {n:,} domains + certificates in {time.monotonic() - t0:.1f} s ({size:.0f} MB)")
    ctx.results.note(f"Start-up store: {n:,} domains, each with a current certificate row (the same "
                     f"wildcard ECDSA leaf), seeded into SQLite directly; {size:.0f} MB on disk.")
    for run in range(1, ctx.p.runs + 1):
        for variant, d in (("empty", empty), ("full", full)):
            h = Hee(ctx, data_dir=d)
            h.start(f"st-{variant}{run}")
            try:
                ms = (h.ready_at - h.spawned_at) * 1000
                if variant == "empty":
                    R.add(keys[0][0], keys[0][1], "hee", ms, 0)
                    log(f"  run {run} empty store: ready in {ms:.0f} ms")
                    continue
                R.add(keys[1][0], keys[1][1], "hee", ms, 0)
                rss = P.rss_kb(h.pid) / 1024
                r = tls_get(h.port, f"c{(run * 7919) % n}.seed.test", timeout=30)
                if r["code"] == 200:
                    R.add(keys[2][0], keys[2][1], "hee", r["secs"] * 1000, 1)
                else:
                    R.na(keys[2][0], keys[2][1], "hee", f"stored name not served: {r['error'] or r['code']}", 1)
                R.add(keys[3][0], keys[3][1], "hee", rss, 1)
                log(f"  run {run} {n:,} certificates: ready in {ms:.0f} ms, RSS {rss:.1f} MB, first request "
                    f"{r['code']} in {r['secs'] * 1000:.1f} ms")
            finally:
                h.stop()
    shutil.rmtree(full, ignore_errors=True)


# ---- 6a/6b. registration and resolve -----------------------------------------------

RESOLVE_LUA = """-- random stored hostname per request
local n = %d
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
request = function()
  return wrk.format("GET", "/v1/edge/resolve?hostname=r" .. math.random(0, n - 1) .. ".res.test")
end
"""


def resolve(ctx):
    n, reg_n = ctx.p.resolve_domains, ctx.p.reg_n
    d = ctx.p.duration
    reg_keys = [("reg_per_s", f"6. API registration, {reg_n:,} domains one POST each over 4 keep-alive "
                              f"connections: domains/s", 0)]
    keys = [("resolve_rps", f"6. /v1/edge/resolve requests/s, {n:,} stored domains, random names (wrk -t1 -c16 "
                            f"-d{d}s)", 0),
            ("resolve_p99_ms", "6. /v1/edge/resolve p99 latency, ms", 2),
            ("resolve_cpu_us", "6. Hee CPU per resolve request, µs", 1)]
    _guard(ctx, reg_keys + keys, lambda: _resolve(ctx, reg_keys, keys, n, reg_n))


def _resolve(ctx, reg_keys, keys, n, reg_n):
    R = ctx.results
    h = Hee(ctx)
    h.start("res")
    try:
        h.api.setup_project()
        for run in range(1, ctx.p.runs + 1):
            names = [f"n{i}.reg{run}.test" for i in range(reg_n)]
            secs, bad, err = add_domains_parallel(h.port_api, h.data_dir, names, parallel=4)
            if bad:
                raise Unavailable(f"registration failed for {bad} of {reg_n}: {err}")
            R.add(reg_keys[0][0], reg_keys[0][1], "hee", reg_n / secs, 0)
            log(f"  run {run}: registered {reg_n:,} in {secs:.1f} s = {reg_n / secs:,.0f}/s")
    finally:
        h.stop()
        shutil.rmtree(h.data_dir, ignore_errors=True)
    # Resolve gets a store of its own: the names registered above are
    # pending, and their first verification sweep would otherwise run while
    # resolve is measured (seen: 42k instead of 90k req/s in a full run).
    # The contention scenario measures resolve during a sweep on purpose.
    h = Hee(ctx)
    h.start("res1")
    try:
        h.api.setup_project()
    finally:
        h.stop()
    db = open_store(h.data_dir)
    t0 = time.monotonic()
    seed_domains(db, project_id(db), (f"r{i}.res.test" for i in range(n)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    log(f"  seeded {n:,} domains in {time.monotonic() - t0:.1f} s")
    h2 = Hee(ctx, data_dir=h.data_dir)
    h2.start("res2")
    try:
        tok = h2.api.project_token()
        h2.api.resolve(f"r{n // 2}.res.test", tok)
        lua = os.path.join(ctx.tmp, "resolve.lua")
        with open(lua, "w") as f:
            f.write(RESOLVE_LUA % n)
        auth = ("-H", f"Authorization: Bearer {tok}")
        url = f"http://127.0.0.1:{PORTS['hee_api']}/"
        wrk(ctx, url, 1, conns=16, extra=auth, script=lua)
        for run in range(1, ctx.p.runs + 1):
            c0 = P.cpu_seconds(h2.pid)
            r = wrk(ctx, url, ctx.p.duration, conns=16, extra=auth, script=lua, save_as=f"r{run}-hee-resolve.txt")
            c1 = P.cpu_seconds(h2.pid)
            if r["errors"]:
                ctx.results.note(f"resolve run {run}: {r['errors']} wrk errors/non-2xx answers")
            R.add(keys[0][0], keys[0][1], "hee", r["rps"], 0)
            R.add(keys[1][0], keys[1][1], "hee", r["p99_ms"], 2)
            if r["requests"]:
                R.add(keys[2][0], keys[2][1], "hee", (c1 - c0) * 1e6 / r["requests"], 1)
            log(f"  run {run}: resolve {r['rps']:,.0f}/s p99 {r['p99_ms']:.2f} ms errors {r['errors']}")
    finally:
        h2.stop()
        shutil.rmtree(h.data_dir, ignore_errors=True)


# ---- 6c. probes -------------------------------------------------------------------

def probes(ctx):
    n = ctx.p.probe_n
    keys = [("probe_per_s", f"6. DNS verification probes/s: {n:,} pending CNAME domains against a local Knot, "
                            "from start-up until the last one verified", 0),
            ("probe_all_s", "6. … time until the last verification, s", 1),
            ("probe_ok", f"6. … verified (of {n:,}; the rest failed their probe and wait for the next one)", 0)]
    _guard(ctx, keys, lambda: _probes(ctx, keys, n))
    m = ctx.p.sched_domains
    mkeys = [("sched_rss_mb", f"6. Probe scheduler: RSS growth over a {SCHED_SECS} s sweep of {m:,} pending domains "
                              "(from ready), MB", 1),
             ("sched_rss_total_mb", "6. … RSS at the end of it, MB", 1),
             ("sched_probes", f"6. … probes done in those {SCHED_SECS} s (names Knot answers NXDOMAIN for)", 0)]
    _guard(ctx, mkeys, lambda: _sched_memory(ctx, mkeys, m))


def _dns_kw(zone):
    """Hee settings for probing against the bench's Knot serving zone."""
    return {"resolvers": f"127.0.0.1:{PORTS['dns']}", "edge_target": f"edge.{zone}"}


def _seed_pending(data_dir, names, slug=SLUG):
    """Adds names as pending domains of slug (due for a probe now); the
    daemon must be stopped. Returns the project id."""
    db = open_store(data_dir)
    try:
        pid = project_id(db, slug)
        seed_domains(db, pid, names, verified=False)
    finally:
        db.close()
    return pid


def _pending_hee(ctx, zone, names, tag):
    """A Hee whose store holds names as pending domains of a CNAME-verified
    project, started (so probing begins at start-up). Returns (hee, project id)."""
    kw = _dns_kw(zone)
    h = Hee(ctx, **kw)
    h.start(tag)
    try:
        h.api.setup_project(verification=["cname"])
    finally:
        h.stop()
    pid = _seed_pending(h.data_dir, names)
    h = Hee(ctx, data_dir=h.data_dir, **kw)
    h.start(tag + "b")
    return h, pid


def _checks(data_dir):
    """Probe results stored so far (read-only)."""
    ro = sqlite3.connect(f"file:{os.path.join(data_dir, 'hee.db')}?mode=ro", uri=True, timeout=10)
    try:
        return ro.execute("SELECT count(*) FROM checks").fetchone()[0]
    finally:
        ro.close()


def _probes(ctx, keys, n):
    zone = "p.test"
    recs = ["edge A 127.0.0.1"] + [f"h{i} CNAME edge.{zone}." for i in range(n)]
    k = Knot(ctx, zone, recs).start("probe")
    try:
        for run in range(1, ctx.p.runs + 1):
            h, pid = _pending_hee(ctx, zone, (f"h{i}.{zone}" for i in range(n)), f"probe{run}")
            try:
                _probe_wait(ctx, keys, h, pid, n, run)
            finally:
                h.stop()
                shutil.rmtree(h.data_dir, ignore_errors=True)
    finally:
        k.stop()


SCHED_SECS = 20


def contention(ctx):
    """The edge's keep-alive rate with the background thread idle, then while
    a verification sweep runs ([server] background_nice decides who yields)."""
    n = ctx.p.contend_domains
    keys = [("edge_idle_rps", "6. Edge keep-alive req/s, background thread idle (wrk -t1 -c64, as scenario 1)", 0),
            ("edge_sweep_rps", f"6. … while a verification sweep of {n:,} pending domains runs", 0),
            ("edge_sweep_ratio", "6. … ratio, during the sweep ÷ idle", 2),
            ("sweep_probes_s", "6. … probes/s the sweep kept up meanwhile", 0),
            ("sweep_knot_cores", "6. … CPU the local Knot used meanwhile, cores (a remote resolver in production)", 2)]
    _guard(ctx, keys, lambda: _contention(ctx, keys, n))


def contention_hooks(ctx):
    """The edge's keep-alive rate while a webhook backlog is replayed."""
    n = ctx.p.hook_n * 25
    keys = [("edge_idle2_rps", "6. Edge keep-alive req/s, background thread idle (again, for the webhook case)", 0),
            ("edge_hooks_rps", f"6. … while a backlog of {2 * n:,} webhook deliveries is replayed to a local receiver",
             0),
            ("edge_hooks_ratio", "6. … ratio, during the replay ÷ idle", 2),
            ("hooks_during_s", "6. … deliveries/s meanwhile", 0),
            ("hooks_recv_cores", "6. … CPU the local Python receiver used meanwhile, cores (remote in production)", 2)]
    _guard(ctx, keys, lambda: _contention_hooks(ctx, keys, n))


CONTEND_RESOLVE_N = 100_000


def contention_api(ctx):
    """/v1/edge/resolve (served by the control thread) idle, then while a
    verification sweep runs on the background thread: the API should keep
    its pace, the sweep yields."""
    n, m = ctx.p.contend_domains, CONTEND_RESOLVE_N
    keys = [("api_idle_rps", f"6. /v1/edge/resolve req/s over {m:,} stored domains, background thread idle "
                             f"(wrk -t1 -c16)", 0),
            ("api_sweep_rps", f"6. … while a verification sweep of {n:,} pending domains runs", 0),
            ("api_sweep_ratio", "6. … ratio, during the sweep ÷ idle", 2),
            ("api_sweep_probes_s", "6. … probes/s the sweep kept up meanwhile", 0),
            ("api_reg_idle_s", f"6. API registrations/s ({CONTEND_REG_N:,}, 4 connections), background thread idle", 0),
            ("api_reg_sweep_s", "6. … while the sweep runs (both threads write the store)", 0)]
    _guard(ctx, keys, lambda: _contention_api(ctx, keys, n, m))


CONTEND_REG_N = 2_000


def _register_rate(h, tag):
    names = [f"g{i}.{tag}.test" for i in range(CONTEND_REG_N)]
    secs, bad, err = add_domains_parallel(h.port_api, h.data_dir, names, parallel=4)
    if bad:
        raise Unavailable(f"registration under contention failed for {bad}: {err}")
    return CONTEND_REG_N / secs


def _resolve_wrk(ctx, tok, m, tag):
    lua = os.path.join(ctx.tmp, "resolve.lua")
    with open(lua, "w") as f:
        f.write(RESOLVE_LUA % m)
    auth = ("-H", f"Authorization: Bearer {tok}")
    r = wrk(ctx, f"http://127.0.0.1:{PORTS['hee_api']}/", ctx.p.duration, conns=16, extra=auth, script=lua,
            save_as=f"{tag}.txt")
    if r["errors"]:
        raise Unavailable(f"resolve under contention: {r['errors']} wrk errors/non-2xx answers")
    return r


def _restart_sweeping(ctx, h, zone, n, kw, tag):
    """Seeds n pending domains into the (stopped) instance h's store and starts
    Hee on it again: the verification sweep begins at start-up."""
    _seed_pending(h.data_dir, (f"s{i}.{zone}" for i in range(n)), slug="sweep")
    h = Hee(ctx, data_dir=h.data_dir, **kw)
    h.start(tag)
    return h


def _contention_api(ctx, keys, n, m):
    zone = "c.test"
    k = Knot(ctx, zone, ["edge A 127.0.0.1"]).start("contapi")
    kw = _dns_kw(zone)
    try:
        for run in range(1, ctx.p.runs + 1):
            h = Hee(ctx, **kw)
            h.start(f"ca{run}")
            try:
                h.api.setup_project()
                h.api.setup_project(slug="sweep", verification=["cname"])
                tok = h.api.project_token()
            finally:
                h.stop()
            db = open_store(h.data_dir)
            try:
                seed_domains(db, project_id(db), (f"r{i}.res.test" for i in range(m)))
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            h = Hee(ctx, data_dir=h.data_dir, **kw)
            h.start(f"ca{run}i")
            try:
                idle = _resolve_wrk(ctx, tok, m, f"ca{run}-idle")
                reg_idle = _register_rate(h, f"ri{run}")
            finally:
                h.stop()
            h = _restart_sweeping(ctx, h, zone, n, kw, f"ca{run}b")
            try:
                c0, t0 = _checks(h.data_dir), time.monotonic()
                busy = _resolve_wrk(ctx, tok, m, f"ca{run}-sweep")
                c1, t1 = _checks(h.data_dir), time.monotonic()
                reg_sweep = _register_rate(h, f"rs{run}")
            finally:
                h.stop()
                shutil.rmtree(h.data_dir, ignore_errors=True)
            _contention_add(ctx, keys, run, idle, busy, (c1 - c0) / (t1 - t0), "the sweep", "probes",
                            what_rate="resolve")
            ctx.results.add(keys[4][0], keys[4][1], "hee", reg_idle, 0)
            ctx.results.add(keys[5][0], keys[5][1], "hee", reg_sweep, 0)
            log(f"  run {run}: registrations {reg_idle:,.0f}/s idle, {reg_sweep:,.0f}/s during the sweep")
    finally:
        k.stop()


def _start_receiver(ctx, out, tag):
    """tools/hook_receiver.py on the receiver port, appending to out."""
    recv = ctx.procs.start("receiver", ["/usr/bin/python3", os.path.join(ctx.home, "tools", "hook_receiver.py"),
                                        "--port", str(PORTS["receiver"]), "--out", out],
                           os.path.join(ctx.tmp, f"receiver-{tag}.log"))
    if not P.wait_port(PORTS["receiver"], 10, recv):
        ctx.procs.stop(recv)
        raise RuntimeError("webhook receiver did not start")
    return recv


def _endpoint_disabled(h, ep, disabled):
    path = "/v1/webhook-endpoints/" + ep["endpoint"]["id"]
    what = "PATCH (disable)" if disabled else "PATCH (enable)"
    h.api.expect(what, *h.api.request("PATCH", path, {"disabled": disabled}))


def _receiver_lines(path):
    try:
        return read(path).count("\n")
    except OSError:
        return 0


def _contention_hooks(ctx, keys, n):
    from .load import SNI
    from .proxy import start_hee_proxy
    for run in range(1, ctx.p.runs + 1):
        out = os.path.join(ctx.tmp, f"hookct-{run}.tsv")
        recv = _start_receiver(ctx, out, f"ct{run}")
        try:
            h = start_hee_proxy(ctx, f"hc{run}")
        except BaseException:
            ctx.procs.stop(recv)
            raise
        try:
            ep = create_endpoint(h.api, f"http://127.0.0.1:{PORTS['receiver']}/hook")
            _endpoint_disabled(h, ep, True)
            _, bad, err = add_domains_parallel(h.port_api, h.data_dir, [f"b{i}.hc{run}.test" for i in range(n)],
                                               parallel=4)
            if bad:
                raise Unavailable(f"registration failed for {bad}: {err}")
            time.sleep(2)
            idle = wrk(ctx, f"https://{SNI}:{h.port}/", ctx.p.duration, save_as=f"hc{run}-idle.txt")
            n0, t0, r0 = _receiver_lines(out), time.monotonic(), P.cpu_seconds(recv.pid)
            _endpoint_disabled(h, ep, False)
            busy = wrk(ctx, f"https://{SNI}:{h.port}/", ctx.p.duration, save_as=f"hc{run}-replay.txt")
            n1, t1, r1 = _receiver_lines(out), time.monotonic(), P.cpu_seconds(recv.pid)
        finally:
            h.stop()
            ctx.procs.stop(recv)
        _contention_add(ctx, keys, run, idle, busy, (n1 - n0) / (t1 - t0), "the replay", "deliveries")
        ctx.results.add(keys[4][0], keys[4][1], "hee", (r1 - r0) / (t1 - t0), 2)


def _contention_add(ctx, keys, run, idle, busy, rate, during, what, what_rate="edge"):
    """Records one run of a contention measurement: keys are (idle req/s,
    req/s during, ratio, background rate meanwhile)."""
    if not idle["requests"] or not busy["requests"]:
        raise Unavailable("wrk produced no requests")
    for (k, label, dec), v in zip(keys[:4], (idle["rps"], busy["rps"], busy["rps"] / idle["rps"], rate)):
        ctx.results.add(k, label, "hee", v, dec)
    log(f"  run {run}: {what_rate} {idle['rps']:,.0f} req/s idle, {busy['rps']:,.0f} during {during} "
        f"({rate:,.0f} {what}/s meanwhile)")


def _contention(ctx, keys, n):
    from .load import SNI
    from .proxy import start_hee_proxy
    zone = "c.test"
    k = Knot(ctx, zone, ["edge A 127.0.0.1"]).start("contend")
    kw = _dns_kw(zone)
    try:
        for run in range(1, ctx.p.runs + 1):
            h = start_hee_proxy(ctx, f"ct{run}", **kw)
            try:
                h.api.setup_project(slug="sweep", verification=["cname"])
                idle = wrk(ctx, f"https://{SNI}:{h.port}/", ctx.p.duration, save_as=f"ct{run}-idle.txt")
            finally:
                h.stop()
            h = _restart_sweeping(ctx, h, zone, n, kw, f"ct{run}b")
            try:
                tls_get(h.port, SNI, timeout=20)  # route and certificate back from the store
                c0, t0, k0 = _checks(h.data_dir), time.monotonic(), P.cpu_seconds(k.proc.pid)
                busy = wrk(ctx, f"https://{SNI}:{h.port}/", ctx.p.duration, save_as=f"ct{run}-sweep.txt")
                c1, t1, k1 = _checks(h.data_dir), time.monotonic(), P.cpu_seconds(k.proc.pid)
            finally:
                h.stop()
                shutil.rmtree(h.data_dir, ignore_errors=True)
            _contention_add(ctx, keys, run, idle, busy, (c1 - c0) / (t1 - t0), "the sweep", "probes")
            ctx.results.add(keys[4][0], keys[4][1], "hee", (k1 - k0) / (t1 - t0), 2)
    finally:
        k.stop()


def _sched_memory(ctx, keys, m):
    """Memory of the probe scheduler with m pending domains: the store holds
    them, the scheduler only its in-flight jobs, so RSS should not follow m.
    Once, not per run: seeding a million rows takes a while."""
    zone = "q.test"
    k = Knot(ctx, zone, ["edge A 127.0.0.1"]).start("sched")
    try:
        h, _ = _pending_hee(ctx, zone, (f"m{i}.{zone}" for i in range(m)), "sched")
        try:
            before = P.rss_kb(h.pid)
            time.sleep(SCHED_SECS)
            after = P.rss_kb(h.pid)
        finally:
            h.stop()
        done = _checks(h.data_dir)
        shutil.rmtree(h.data_dir, ignore_errors=True)
    finally:
        k.stop()
    R = ctx.results
    R.add(keys[0][0], keys[0][1], "hee", (after - before) / 1024, 1)
    R.add(keys[1][0], keys[1][1], "hee", after / 1024, 1)
    R.add(keys[2][0], keys[2][1], "hee", done, 0)
    log(f"  scheduler over {m:,} pending domains: RSS {before} -> {after} KB in {SCHED_SECS} s, {done:,} probes")


def _probe_wait(ctx, keys, h, pid, n, run):
    """Polls the store (read-only) until every domain is verified, or no
    more get verified for 15 s; records the rate up to the last one."""
    R = ctx.results
    drops0 = udp_rcvbuf_errors()
    ro = sqlite3.connect(f"file:{os.path.join(h.data_dir, 'hee.db')}?mode=ro", uri=True, timeout=10)
    try:
        last, last_t = -1, time.monotonic()
        end = time.monotonic() + ctx.p.probe_timeout
        while time.monotonic() < end:
            got = ro.execute("SELECT count(*) FROM domains WHERE project_id=? AND verified=1", (pid,)).fetchone()[0]
            if got != last:
                last, last_t = got, time.monotonic()
            if got >= n or time.monotonic() - last_t > 15:
                break
            time.sleep(0.1)
        if last < n:
            rows = ro.execute("SELECT c.outcome, count(*) FROM domains d LEFT JOIN checks c ON c.id = "
                              "(SELECT max(id) FROM checks WHERE domain_id = d.id) WHERE d.project_id=? AND "
                              "d.verified=0 GROUP BY c.outcome", (pid,)).fetchall()
            ctx.results.note(f"probes run {run}: {n - last:,} of {n:,} not verified; their last check: "
                             + ", ".join(f"{o or 'none yet'} ×{c}" for o, c in rows))
    finally:
        ro.close()
    drops = udp_rcvbuf_errors() - drops0
    if drops > 0:
        ctx.results.note(f"probes run {run}: {drops:,} UDP datagrams dropped for a full receive buffer on this "
                         "host meanwhile (Knot runs 4 UDP workers to keep this low)")
    if last <= 0:
        raise Unavailable(f"no domain verified within {ctx.p.probe_timeout} s (probe scheduler missing?)")
    secs = last_t - h.ready_at
    R.add(keys[0][0], keys[0][1], "hee", last / secs, 0)
    R.add(keys[1][0], keys[1][1], "hee", secs, 1)
    R.add(keys[2][0], keys[2][1], "hee", last, 0)
    log(f"  run {run}: {last:,}/{n:,} verified in {secs:.1f} s = {last / secs:,.0f} probes/s")


def udp_rcvbuf_errors():
    """Host-wide count of UDP datagrams dropped for a full socket buffer."""
    rows = [line.split() for line in read("/proc/net/snmp").splitlines() if line.startswith("Udp:")]
    try:
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (IndexError, ValueError):
        return 0


# ---- 6d. webhooks -----------------------------------------------------------------

ENDPOINT_ROUTES = ("/v1/webhooks/endpoints", "/v1/webhook-endpoints", "/v1/webhooks")


def webhooks(ctx):
    m = ctx.p.hook_n
    keys = [("hook_drain_per_s", f"6. Webhook deliveries/s to a local receiver, one endpoint (4 in flight): a backlog of "
                                 f"{m:,} registrations' events made while it was disabled, replayed on re-enable", 0),
            ("hook_drain_count", "6. … deliveries replayed", 0),
            ("hook_per_s", f"6. Webhook deliveries/s while {m:,} registrations run as fast as the API takes them "
                           "(bounded by the registration rate)", 0),
            ("hook_count", f"6. … deliveries received for those {m:,} registrations", 0),
            ("hook_p50_ms", "6. Change-to-delivery latency, registration request sent → its domain.created at the "
                            "receiver: p50, ms", 1),
            ("hook_p99_ms", "6. … p99, ms", 1),
            ("hook_reg_per_s", "6. … the registration rate meanwhile, domains/s", 0),
            ("hook_one_ms", "6. Change-to-delivery latency, one registration at a time (20, idle otherwise): "
                            "median, ms", 1),
            ("hook_one_max_ms", "6. … max of 20, ms", 1)]
    _guard(ctx, keys, lambda: _webhooks(ctx, keys, m))


def create_endpoint(api, url):
    for route in ENDPOINT_ROUTES:
        s, d, raw = api.request("POST", route, {"url": url, "projectSlug": SLUG})
        if s in (404, 405):
            continue
        if s == 400 and b"projectSlug" in raw:
            s, d, raw = api.request("POST", route, {"url": url}, {"X-Hee-Project": SLUG})
        return api.expect(f"POST {route}", s, d, raw)
    raise Unavailable("feature missing: webhook endpoint API (" + ", ".join(ENDPOINT_ROUTES) + " -> 404)")


def _collect_deliveries(path, sent, timeout, quiet=3):
    """Waits until every registered name's domain.created (or first event)
    arrived and deliveries then stop for `quiet` s. Returns ({host: first arrival},
    [arrival times of every delivery for these names])."""
    end = time.monotonic() + timeout
    last_n, quiet_since = -1, time.monotonic()
    while True:
        created, anyfirst, times = {}, {}, []
        for line in read(path).splitlines():
            t, typ, host = (line.split("\t") + ["", ""])[:3]
            if host not in sent:
                continue
            t = float(t)
            times.append(t)
            anyfirst[host] = min(anyfirst.get(host, t), t)
            if typ == "domain.created":
                created[host] = min(created.get(host, t), t)
        first = {h: created.get(h, t) for h, t in anyfirst.items()}
        now = time.monotonic()
        if len(times) != last_n:
            last_n, quiet_since = len(times), now
        if (len(first) >= len(sent) and now - quiet_since >= quiet) or now > end:
            return first, times
        time.sleep(0.2)


def _one_at_a_time(h, out, run, n):
    """Registers n names one by one once the burst has drained, each after
    the previous one's domain.created arrived; returns the latencies in ms."""
    lat = []
    for i in range(n):
        name = f"s{i}.hook{run}.test"
        t = time.time()
        h.api.add_domain(name)
        first, _ = _collect_deliveries(out, {name: t}, 10, quiet=0)
        if name in first:
            lat.append((first[name] - t) * 1000)
    return lat


def _drain(ctx, h, out, run, ep, m):
    """The engine alone: m registrations while the endpoint is disabled (their
    deliveries wait), then re-enable it and time the replay, from the PATCH
    to the last delivery's arrival. Returns (deliveries/s, deliveries)."""
    _endpoint_disabled(h, ep, True)
    names = [f"d{i}.hook{run}.test" for i in range(m)]
    sent = {}
    _, bad, err = add_domains_parallel(h.port_api, h.data_dir, names, parallel=4,
                                       on_done=lambda n, t: sent.__setitem__(n, t))
    if bad:
        raise Unavailable(f"registration failed for {bad}: {err}")
    time.sleep(2)  # let verification and its events land before the clock starts
    t0 = time.time()
    _endpoint_disabled(h, ep, False)
    first, times = _collect_deliveries(out, sent, ctx.p.hook_timeout)
    if len(first) < m or not times:
        raise Unavailable(f"only {len(first)} of {m} backlogged domains' deliveries arrived")
    return len(times) / (max(times) - t0), len(times)


def _webhooks(ctx, keys, m):
    R = ctx.results
    for run in range(1, ctx.p.runs + 1):
        out = os.path.join(ctx.tmp, f"hooks-{run}.tsv")
        recv = _start_receiver(ctx, out, str(run))
        h = Hee(ctx)
        try:
            h.start(f"hook{run}")
            h.api.setup_project()
            ep = create_endpoint(h.api, f"http://127.0.0.1:{PORTS['receiver']}/hook")
            sent = {}
            names = [f"w{i}.hook{run}.test" for i in range(m)]
            secs, bad, err = add_domains_parallel(h.port_api, h.data_dir, names, parallel=4,
                                                  on_done=lambda n, t: sent.__setitem__(n, t))
            if bad:
                raise Unavailable(f"registration failed for {bad}: {err}")
            first, times = _collect_deliveries(out, sent, ctx.p.hook_timeout)
            if len(first) < m:
                raise Unavailable(f"only {len(first)} of {m} domain.created deliveries arrived in "
                                  f"{ctx.p.hook_timeout} s")
            lat = [(first[n] - sent[n]) * 1000 for n in names]
            span = max(times) - min(sent.values())
            add = {k: (label, dec) for k, label, dec in keys}
            for k, v in (("hook_per_s", len(times) / span), ("hook_count", len(times)), ("hook_p50_ms", median(lat)),
                         ("hook_p99_ms", percentile(lat, 99)), ("hook_reg_per_s", m / secs)):
                R.add(k, add[k][0], "hee", v, add[k][1])
            log(f"  run {run}: {len(times)} deliveries in {span:.1f} s = {len(times) / span:,.0f}/s; domain.created "
                f"latency p50 {median(lat):.1f} ms p99 {percentile(lat, 99):.1f} ms; registration {m / secs:,.0f}/s")
            one = _one_at_a_time(h, out, run, 20)
            if one:
                R.add("hook_one_ms", add["hook_one_ms"][0], "hee", median(one), 1)
                R.add("hook_one_max_ms", add["hook_one_max_ms"][0], "hee", max(one), 1)
                log(f"  run {run}: one at a time: median {median(one):.1f} ms, max {max(one):.1f} ms")
            rate, count = _drain(ctx, h, out, run, ep, m)
            R.add("hook_drain_per_s", add["hook_drain_per_s"][0], "hee", rate, 0)
            R.add("hook_drain_count", add["hook_drain_count"][0], "hee", count, 0)
            log(f"  run {run}: backlog of {count} deliveries replayed at {rate:,.0f}/s")
        finally:
            h.stop()
            ctx.procs.stop(recv)


