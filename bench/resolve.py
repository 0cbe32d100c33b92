#!/usr/bin/env python3
"""Resolve benchmark: 1,000,000 registered domains, then wrk against
GET /v1/edge/resolve with keep-alive clients on loopback.

    HEE_BIN=build/hee python3 bench/resolve.py [--domains 1000000] [--api 50000]
                                               [--register-with python|wrk]
                                               [--duration 10] [--connections 32]
                                               [--wait-load 1.5 --wait-max 300]

Steps (each timed and printed):
  1. start hee (rate limit off), create project "bench" and a token;
  2. register --api domains through the API (POST /v1/edge/domains) — the real
     path: validation, quota, row + domain.created event + audit, committed
     with synchronous=FULL before each 201 (concurrent registrations share a
     commit: the API batches them). Clients: 8 keep-alive Python threads, or
     with --register-with wrk, wrk with --connections keep-alive connections
     (the Python client, not the daemon, is then what limits the rate);
  3. stop hee and seed the rest straight into the store file (one
     transaction; verified rows off the probe schedule, without events) —
     seeding only, so the resolve run has 1,000,000 rows;
  4. start hee again and run wrk (bounded: --duration seconds) with a Lua
     script picking a random registered hostname per request, then once more on
     a single hot hostname;
  5. print req/s and latency percentiles, stop hee.
Needs wrk (apt-get install wrk). Use a Release build for figures.
"""
import argparse
import os
import random
import signal
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "lib"))
from heetest import Hee  # noqa: E402

HOST_FMT = "d%d.bench.example.com"


def register_via_api(h, token, n, threads=8):
    done = [0] * threads
    errors = []

    def worker(k):
        c = h.client(token)
        for i in range(k, n, threads):
            r = c.post("/v1/edge/domains", {"hostname": HOST_FMT % i, "metadata": {"workspaceId": "ws_%d" % i,
                                                                                   "plan": "pro"}})
            if r.status != 201:
                errors.append(r)
                return
            done[k] += 1

    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    if errors:
        raise SystemExit("API registration failed: %r" % errors[0])
    return sum(done), dt


LUA_REGISTER = """
local n = %d
local token = "%s"
local i = 0
request = function()
  local k = i
  i = i + 1
  if k >= n then k = 0 end  -- past n: a duplicate (409) until wrk is stopped
  local body = '{"hostname":"d' .. k .. '.bench.example.com","metadata":{"workspaceId":"ws_' .. k ..
               '","plan":"pro"}}'
  return wrk.format("POST", "/v1/edge/domains", {["Authorization"] = "Bearer " .. token,
                    ["Content-Type"] = "application/json"}, body)
end
"""


def register_via_wrk(h, token, n, connections, limit_s=3600):
    """Registers d0..d(n-1) with wrk (one thread, keep-alive connections),
    stopping it (SIGINT) once the project counts n domains; returns
    (registered, seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA_REGISTER % (n, token))
        path = f.name
    t0 = time.time()
    p = subprocess.Popen(["wrk", "-t1", "-c%d" % connections, "-d%ds" % limit_s, "--timeout", "10s", "-s", path,
                          h.api_url + "/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        got = 0
        while p.poll() is None and time.time() - t0 < limit_s:
            time.sleep(0.2)
            got = h.sql("SELECT active_domains FROM projects WHERE slug = 'bench'")[0][0]
            if got >= n:
                break
        dt = time.time() - t0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=60)[0]
        os.unlink(path)
    if got < n:
        raise SystemExit("wrk registration: %d of %d registered\n%s" % (got, n, out))
    return got, dt


def seed_store(db_path, start, end, project_id):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    now = int(time.time() * 1000)
    alphabet = string.ascii_letters + string.digits
    rnd = random.Random(1)
    t0 = time.time()
    db.execute("BEGIN")
    # Seeded rows are verified and off the probe schedule (next_probe_at NULL),
    # so the verifier stays idle while resolve is measured.
    db.executemany(
        "INSERT INTO domains (hostname, project_id, state, verified, verified_at, verify_method, challenge, "
        "metadata, created_at, updated_at) VALUES (?, ?, 'verified', 1, ?, 'cname', ?, ?, ?, ?)",
        ((HOST_FMT % i, project_id, now, "".join(rnd.choice(alphabet) for _ in range(32)),
          '{"workspaceId":"ws_%d","plan":"pro"}' % i, now, now) for i in range(start, end)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return end - start, time.time() - t0


LUA_RANDOM = """
local n = %d
local token = "%s"
math.randomseed(%d)
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", "/v1/edge/resolve?hostname=d" .. i .. ".bench.example.com",
                    {["Authorization"] = "Bearer " .. token})
end
response = function(status, headers, body)
  if status ~= 200 then wrk.thread:stop() end
end
"""

LUA_HOT = """
wrk.headers["Authorization"] = "Bearer %s"
wrk.path = "/v1/edge/resolve?hostname=d7.bench.example.com"
"""


def wait_quiet(limit, max_wait):
    """On a shared box, waits (at most max_wait s) for the 1-minute load
    average to drop below limit; returns the load when the run starts."""
    deadline = time.time() + max_wait
    while True:
        load = os.getloadavg()[0]
        if limit <= 0 or load < limit or time.time() >= deadline:
            return load
        time.sleep(5)


def run_wrk(h, script, duration, connections, threads):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        p = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency",
                            "--timeout", "2s", "-s", path, h.api_url + "/"], capture_output=True, text=True,
                           timeout=duration + 60)
    finally:
        os.unlink(path)
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=1000000)
    ap.add_argument("--api", type=int, default=50000)
    ap.add_argument("--register-with", choices=("python", "wrk"), default="python")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--wait-load", type=float, default=0, help="wait for loadavg below this before each wrk run")
    ap.add_argument("--wait-max", type=int, default=300)
    args = ap.parse_args()
    if not shutil_which("wrk"):
        raise SystemExit("wrk not found (apt-get install wrk)")
    # Rate limit off; one edge worker (idle here); probes of the API-registered
    # domains one at a time against a closed local resolver, so they cost
    # next to nothing.
    conf = {"api": {"rate_limit": "0"}, "log": {"level": "warn"}, "verify": {"concurrency": "1"}}
    h = Hee(conf=conf, workers=1)
    try:
        c = h.new_project("bench", scopes=("connections:read", "connections:write"), maxDomains=args.domains * 2)
        token = c.token
        n_api = min(args.api, args.domains)
        if args.register_with == "wrk":
            n, dt = register_via_wrk(h, token, n_api, args.connections)
            who = "wrk, %d keep-alive connections" % args.connections
        else:
            n, dt = register_via_api(h, token, n_api)
            who = "8 keep-alive Python clients"
        print("API registration: %d domains in %.1f s = %.0f/s (%s)" % (n, dt, n / dt, who), flush=True)
        pid = h.sql("SELECT id FROM projects WHERE slug = 'bench'")[0][0]
        h.stop()
        n, dt = seed_store(h.db_path, n_api, args.domains, pid)
        print("store seeding: %d domains in %.1f s = %.0f/s (one transaction)" % (n, dt, n / max(dt, 1e-9)),
              flush=True)
        h.start()
        total = h.sql("SELECT count(*) FROM domains WHERE removed_at IS NULL")[0][0]
        print("active domains: %d" % total, flush=True)
        load = wait_quiet(args.wait_load, args.wait_max)
        print("--- resolve, random hostnames over all %d (load average %.2f) ---" % (total, load))
        print(run_wrk(h, LUA_RANDOM % (total, token, 42), args.duration, args.connections, args.wrk_threads),
              flush=True)
        load = wait_quiet(args.wait_load, args.wait_max)
        print("--- resolve, one hot hostname (load average %.2f) ---" % load)
        print(run_wrk(h, LUA_HOT % token, args.duration, args.connections, args.wrk_threads), flush=True)
        h.stop()
    finally:
        if h.alive():
            h.kill()
        h.cleanup()


def shutil_which(name):
    import shutil
    return shutil.which(name)


if __name__ == "__main__":
    main()
