"""ondemand: scenario 3 (first request for never-seen names, Hee and Caddy
against the same fresh Pebble in every run) and the certificate half of
scenario 4 (memory per cached certificate).

Names are allowed beforehand: Caddy asks the upstream's /ask (every *.test
name is allowed); Hee has them registered through its API in a project whose
settings trust registration alone. Leaves are verified against the issuing
root (Pebble's /roots/0, or Hee's local CA from `hee ca export`).
"""

import re
import shutil
import time
import urllib.request

from . import proc as P
from .hee import add_domains_parallel, open_store, project_id, seed_domains
from .load import tls_get, tls_many
from .systems import PORTS, CaddyOnDemand, Hee, Pebble
from .util import Unavailable, log, median, percentile


def od_keys(ctx):
    n_seq, n_conc = ctx.p.od_seq, ctx.p.od_conc
    return [("od_first_ever_ms", "3. First-ever issuance on a fresh instance (incl. ACME account), ms", 0),
            ("od_seq_med_ms", f"3. First request to a never-seen name, {n_seq} one after another (Hee: sent the "
                              "moment its registration returns): median, ms", 0),
            ("od_seq_p90_ms", "3. … p90, ms", 0),
            ("od_seq_max_ms", "3. … max, ms", 0),
            ("od_seq_fail", f"3. … failures (of {n_seq})", 0),
            ("od_reg_first_ms", "3. … Hee: registration API call + first request, median, ms", 0),
            ("od_cached_ms", "3. Second request to the same name (cached, new connection): median, ms", 2),
            ("od_conc_ok", f"3. {n_conc} new names at once: served", 0),
            ("od_conc_wall_s", f"3. {n_conc} new names at once: total time, s (Hee: from the first of "
                               f"{n_conc} registrations, 4 in parallel, then all {n_conc} requests at once)", 2),
            ("od_conc_max_ms", f"3. {n_conc} new names at once: slowest success (from its request), ms", 0)]


def _na_all(ctx, keys, system, reason):
    for k, label, dec in keys:
        ctx.results.na(k, label, system, reason, dec)


def _measure(ctx, keys, system, port, ca, run, register=None):
    """The on-demand sequence for one system. register(names) is Hee's API
    registration; Hee starts issuing at registration, so each name is asked
    for the moment its registration returns, leaving no head start."""
    R = ctx.results
    key = {k: (label, dec) for k, label, dec in keys}

    def add(k, v):
        R.add(k, key[k][0], system, v, key[k][1])
    warm = f"od-r{run}-warm.test"
    seq = [f"od-r{run}-s{i}.test" for i in range(1, ctx.p.od_seq + 1)]
    conc = [f"od-r{run}-c{i}.test" for i in range(1, ctx.p.od_conc + 1)]
    if register:
        register([warm])
    r = tls_get(port, warm, ca, timeout=120)
    if r["code"] != 200:
        raise Unavailable(f"{system}: first on-demand request failed: {r['error'] or r['code']}")
    add("od_first_ever_ms", r["secs"] * 1000)
    first, total, cached, fails = [], [], [], 0
    for n in seq:
        t0 = time.perf_counter()
        if register:
            register([n])
        a = tls_get(port, n, ca, timeout=60)
        if a["code"] == 200:
            first.append(a["secs"] * 1000)
            total.append((time.perf_counter() - t0) * 1000)
        else:
            fails += 1
            log(f"  {system} {n}: {a['error'] or a['code']}")
        b = tls_get(port, n, ca, timeout=60)
        if b["code"] == 200:
            cached.append(b["secs"] * 1000)
    t0 = time.monotonic()
    if register:
        register(conc)
    res = tls_many(port, conc, parallel=len(conc), cafile=ca, timeout=120)
    wall = time.monotonic() - t0
    ok = [x for x in res if x["code"] == 200]
    bad = [x for x in res if x["code"] != 200]
    if bad:
        log(f"  {system}: {len(bad)} of {len(conc)} at once failed, first: {bad[0]['error'] or bad[0]['code']}")
        if system == "caddy":
            R.note("Caddy's failures among the names asked at once are TLS internal-error alerts; with its debug "
                   "log on, Caddy 2.6.2 gives 'on-demand rate limit exceeded' for them although no rate_limit is "
                   "configured (the peers harness, which started 50 curl processes one after another, saw 46–48 "
                   "of 50; this client opens all 50 within a millisecond).")
    add("od_seq_med_ms", median(first))
    add("od_seq_p90_ms", percentile(first, 90))
    add("od_seq_max_ms", max(first) if first else None)
    add("od_seq_fail", fails)
    if register:
        add("od_reg_first_ms", median(total))
    add("od_cached_ms", median(cached))
    add("od_conc_ok", len(ok))
    add("od_conc_wall_s", wall)
    add("od_conc_max_ms", max(x["secs"] for x in ok) * 1000 if ok else None)
    log(f"  {system}: first request median {median(first):.0f} ms p90 {percentile(first, 90):.0f} ms "
        f"(fail {fails}); cached {median(cached):.1f} ms; {len(ok)}/{len(conc)} at once in {wall:.2f} s")


def ondemand(ctx):
    keys = od_keys(ctx)
    ctx.results.declare(keys)
    for run in range(1, ctx.p.runs + 1):
        log(f"on-demand run {run}/{ctx.p.runs}")
        peb = Pebble(ctx).start(f"od{run}")
        try:
            c = CaddyOnDemand(ctx, peb)
            try:
                c.start(f"od{run}")
                _measure(ctx, keys, "caddy", c.port, peb.root_file, run)
            except (Unavailable, RuntimeError, OSError) as e:
                log(f"  caddy: {e}")
                _na_all(ctx, keys, "caddy", str(e).splitlines()[0][:200])
            finally:
                c.stop()
            if ctx.edge_na:
                _na_all(ctx, keys, "hee", ctx.edge_na)
                continue
            h = Hee(ctx, acme=peb)
            try:
                h.start(f"od{run}")
                h.api.setup_project()

                def register(names):
                    if len(names) == 1:
                        h.api.add_domain(names[0])
                        return
                    secs, bad, err = add_domains_parallel(h.port_api, h.data_dir, names, parallel=4)
                    if bad:
                        raise Unavailable(f"registering names failed: {err}")
                _measure(ctx, keys, "hee", h.port, peb.root_file, run, register)
            except (Unavailable, RuntimeError, OSError) as e:
                log(f"  hee: {e}")
                _na_all(ctx, keys, "hee", str(e).splitlines()[0][:200])
            finally:
                h.stop()
        finally:
            peb.stop()


# ---- memory per cached certificate --------------------------------------------------

def cert_keys(ctx):
    return [("kb_per_cert", f"4. Memory per cached certificate (RSS growth ÷ certificates; Hee: "
                            f"{ctx.p.hee_certs:,} from its local CA, Caddy: {ctx.p.caddy_certs:,} from Pebble), KB", 2),
            ("certs_ok", "4. Certificates issued and cached in that test", 0),
            ("certs_per_s", "4. On-demand issuance rate in that test (16 in parallel), certificates/s", 0),
            ("kb_per_cert_loaded", "4. Memory per certificate loaded from the store after a restart, KB", 2),
            ("heap_kb_per_cert", "4. Caddy: Go heap in use per certificate after a forced GC (a floor under "
                                 "its RSS figure), KB", 2)]


BATCH_LIMIT_S = 300   # Pebble has been seen to stop answering new orders mid-batch


def _batch(ctx, system, pid, port, names, ca, keys):
    """RSS delta over one batch of new names; returns (ok, kb_per_cert)."""
    R = ctx.results
    time.sleep(3)
    before = P.rss_kb(pid)
    t0 = time.monotonic()
    left, ok, bad = list(names), 0, []
    for attempt in range(3):   # Caddy refuses some at 16 in parallel ("on-demand rate limit exceeded")
        budget = BATCH_LIMIT_S - (time.monotonic() - t0)
        if budget <= 0:
            break
        res = tls_many(port, left, parallel=16, cafile=ca, timeout=120, deadline=budget)
        ok += sum(1 for x in res if x["code"] == 200)
        bad = [x for x in res if x["code"] != 200]
        if not bad:
            break
        log(f"  {system}: pass {attempt + 1}: {len(bad)} failed, first: {bad[0]['name']} "
            f"{bad[0]['error'] or bad[0]['code']}")
        left = [x["name"] for x in bad]
    secs = time.monotonic() - t0
    if bad and secs >= BATCH_LIMIT_S:
        R.note(f"{system}: {len(bad)} of {len(names)} names not served within the batch's {BATCH_LIMIT_S} s "
               f"(first: {bad[0]['name']} {bad[0]['error'] or bad[0]['code']})")
    time.sleep(10)
    after = P.rss_kb(pid)
    per = (after - before) / ok if ok else None
    R.add(keys[1][0], keys[1][1], system, ok, 0)
    R.add(keys[2][0], keys[2][1], system, ok / secs if secs else None, 0)
    log(f"  {system}: {ok}/{len(names)} certs in {secs:.1f} s; RSS {before} -> {after} KB = "
        f"{per if per is None else round(per, 2)} KB/cert")
    return ok, per


def cert_memory(ctx):
    keys = cert_keys(ctx)
    R = ctx.results
    ctx.results.declare(keys)
    for run in range(1, ctx.p.cert_runs + 1):
        log(f"certificate-cache memory run {run}/{ctx.p.cert_runs}")
        _caddy_certs(ctx, keys, run)
        if ctx.edge_na:
            _na_all(ctx, keys, "hee", ctx.edge_na)
        else:
            try:
                _hee_certs(ctx, keys, run)
            except (Unavailable, RuntimeError, OSError) as e:
                log(f"  hee: {e}")
                _na_all(ctx, keys, "hee", str(e).splitlines()[0][:200])
    R.na(keys[3][0], keys[3][1], "caddy", "not measured for Caddy", 2)
    R.na(keys[4][0], keys[4][1], "hee", "C heap: no garbage collector, RSS is the figure", 2)


def caddy_heap_kb():
    """Go HeapInuse after a forced GC, from Caddy's admin pprof endpoint."""
    url = f"http://127.0.0.1:{PORTS['caddy_admin']}/debug/pprof/heap?debug=1&gc=1"
    try:
        text = urllib.request.urlopen(url, timeout=30).read().decode(errors="replace")
    except OSError:
        return None
    m = re.search(r"^# HeapInuse = (\d+)", text, re.M)
    return int(m.group(1)) / 1024 if m else None


def _caddy_certs(ctx, keys, run):
    n, shards = ctx.p.caddy_certs, 20
    peb = Pebble(ctx).start(f"cm{run}")
    c = CaddyOnDemand(ctx, peb, shards=shards)
    try:
        c.start(f"cm{run}")
        warm = [f"w{i}.s{i % shards}.test" for i in range(2 * shards)]
        tls_many(c.port, warm, parallel=16, cafile=peb.root_file, timeout=120)
        names = [f"m{run}-{i}.s{i % shards}.test" for i in range(n)]
        hb = caddy_heap_kb()
        ok, per = _batch(ctx, "caddy", c.pid, c.port, names, peb.root_file, keys)
        ha = caddy_heap_kb()
        ctx.results.add(keys[0][0], keys[0][1], "caddy", per, 2)
        if ok and hb and ha:
            ctx.results.add(keys[4][0], keys[4][1], "caddy", (ha - hb) / ok, 2)
    except (Unavailable, RuntimeError, OSError) as e:
        log(f"  caddy: {e}")
        _na_all(ctx, keys[:3], "caddy", str(e).splitlines()[0][:200])
    finally:
        c.stop()
        peb.stop()


def _hee_certs(ctx, keys, run):
    """Names are seeded into the store as verified (registration-trusted)
    domains without certificates, so each first handshake issues one from
    the local CA on demand; registering 10,000 through the API would take
    minutes (each registration also starts an issuance)."""
    n = ctx.p.hee_certs
    h = Hee(ctx)
    h.start(f"cm{run}")
    try:
        h.api.setup_project()
        ca = h.local_ca_pem()
    finally:
        h.stop()
    warm = [f"w{i}.cm.test" for i in range(200)]
    names = [f"m{run}-{i}.cm.test" for i in range(n)]
    db = open_store(h.data_dir)
    seed_domains(db, project_id(db), warm + names)
    db.close()
    h = Hee(ctx, data_dir=h.data_dir)
    try:
        h.start(f"cm{run}a")
        tls_many(h.port, warm, parallel=16, cafile=ca, timeout=120)
        ok, per = _batch(ctx, "hee", h.pid, h.port, names, ca, keys)
        ctx.results.add(keys[0][0], keys[0][1], "hee", per, 2)
        if run > 1:
            return
        # once: the same certificates after a restart, loaded from the store, nothing issued
        h.stop()
        h.start(f"cm{run}b")
        tls_many(h.port, warm, parallel=16, cafile=ca, timeout=120)
        time.sleep(3)
        before = P.rss_kb(h.pid)
        res = tls_many(h.port, names, parallel=16, cafile=ca, timeout=120)
        ok2 = sum(1 for x in res if x["code"] == 200)
        time.sleep(5)
        after = P.rss_kb(h.pid)
        if ok2:
            ctx.results.add(keys[3][0], keys[3][1], "hee", (after - before) / ok2, 2)
        log(f"  hee after restart: {ok2}/{n} served from the store; RSS {before} -> {after} KB")
    finally:
        h.stop()
        shutil.rmtree(h.data_dir, ignore_errors=True)
