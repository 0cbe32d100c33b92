"""load: the clients. wrk for throughput, an asyncio TLS client for
first-request latency and certificate batches, idle_conns.py for memory.

wrk needs the benchmark name (bench.test) to resolve to 127.0.0.1 so that it
sends SNI; it runs in a private mount namespace with a bind-mounted hosts
file (unshare -m as root, unshare -rm otherwise), so /etc/hosts is never
touched. Every client call is bounded by a timeout.
"""

import asyncio
import os
import re
import ssl
import subprocess
import tempfile
import time

from .util import log

SNI = "bench.test"


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[unit]


def parse_wrk(text):
    out = {"rps": 0.0, "p99_ms": float("nan"), "requests": 0, "errors": 0}
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            out["rps"] = float(s.split()[1])
        elif s.startswith("99%"):
            out["p99_ms"] = _ms(s.split()[1])
        elif "requests in" in s:
            out["requests"] = int(s.split()[0])
        elif s.startswith("Socket errors:"):
            out["errors"] += sum(int(x) for x in re.findall(r"\d+", s))
        elif s.startswith("Non-2xx"):
            out["errors"] += int(s.split()[-1])
    return out


def wrk(ctx, url, duration, conns=64, threads=1, extra=(), script=None, save_as=None):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", *extra]
    if script:
        argv += ["-s", script]
    argv.append(url)
    if "://127.0.0.1" not in url:
        ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
        argv = ns + ["sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', ctx.hosts_file] + argv
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
        text = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    if save_as:
        with open(os.path.join(ctx.out, save_as), "w") as f:
            f.write(" ".join(argv) + "\n" + text)
    res = parse_wrk(text)
    if res["requests"] == 0:
        log(f"  wrk produced no requests: {text.strip()[:300]}")
    return res


# ---- the TLS client -------------------------------------------------------------

def _ctx(cafile):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.set_alpn_protocols(["http/1.1"])
    if cafile:
        c.load_verify_locations(cafile)
    else:
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
    return c


async def _one(port, name, sslctx, timeout):
    t0 = time.perf_counter()
    w = None
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=sslctx, server_hostname=name,
                                    ssl_handshake_timeout=timeout), timeout)
        w.write(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\nUser-Agent: hee-bench\r\n\r\n".encode())
        left = max(0.1, timeout - (time.perf_counter() - t0))
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), left)
        code = int(head.split(b" ", 2)[1])
        cl = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                cl = int(line.split(b":", 1)[1])
        left = max(0.1, timeout - (time.perf_counter() - t0))
        if cl is not None:
            await asyncio.wait_for(r.readexactly(cl), left)
        else:
            await asyncio.wait_for(r.read(), left)
        return {"name": name, "code": code, "secs": time.perf_counter() - t0, "error": ""}
    except Exception as e:  # noqa: BLE001 - every failure is a result
        return {"name": name, "code": 0, "secs": time.perf_counter() - t0,
                "error": (type(e).__name__ + ": " + str(e))[:160]}
    finally:
        if w is not None:
            w.transport.abort()


async def _many(port, names, parallel, cafile, timeout, deadline):
    sem = asyncio.Semaphore(parallel)
    sslctx = _ctx(cafile)
    end = time.perf_counter() + deadline if deadline else None

    async def one(n):
        async with sem:
            left = end - time.perf_counter() if end else timeout
            if left <= 0:
                return {"name": n, "code": 0, "secs": 0.0, "error": "not tried: the batch's deadline passed"}
            return await _one(port, n, sslctx, min(timeout, left))
    return await asyncio.gather(*(one(n) for n in names))


def tls_many(port, names, parallel=16, cafile=None, timeout=60.0, deadline=None):
    """GET / on a new TLS connection per name (SNI = Host = name), at most
    `parallel` at once. Returns one dict per name: code, secs, error.
    deadline (seconds) bounds the whole call: a server that stops answering
    would otherwise cost `timeout` per name."""
    return asyncio.run(_many(port, list(names), parallel, cafile, timeout, deadline))


def tls_get(port, name, cafile=None, timeout=60.0):
    return tls_many(port, [name], 1, cafile, timeout)[0]


def tls_facts(port, name):
    """Negotiated protocol, cipher, group and the chain the server sends."""
    try:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                           input="", capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "timeout"
    keep = []
    for line in r.stdout.splitlines():
        s = line.strip()
        if re.match(r"^\d s:", s) or s.startswith(("Protocol", "Cipher is", "Server Temp Key",
                                                    "Peer signature type", "New, ")) or "a:PKEY" in s:
            keep.append(s)
    return "; ".join(keep)


# ---- idle connections -------------------------------------------------------------

def idle_conns(ctx, port, n, pid, rss_fn, name=SNI, hold=300):
    """Opens n idle TLS connections (each: full handshake + one GET) with
    tools/idle_conns.py; returns (ok, rss_kb_while_held, ready_line)."""
    out = tempfile.mkstemp(prefix=f"idle-{port}-", suffix=".out", dir=ctx.tmp)[1]
    p = ctx.procs.start("idle_conns", ["timeout", str(hold + 60), "/usr/bin/python3",
                                       os.path.join(ctx.home, "tools", "idle_conns.py"), "--port", str(port),
                                       "--sni", name, "--n", str(n), "--parallel", "128", "--hold", str(hold)],
                        out)
    line = ""
    end = time.monotonic() + hold
    while time.monotonic() < end and p.alive():
        with open(out) as f:
            m = re.search(r"^READY .*$", f.read(), re.M)
        if m:
            line = m.group(0)
            break
        time.sleep(0.2)
    time.sleep(3)
    rss = rss_fn(pid)
    held = established(port)
    ctx.procs.stop(p)
    ok = int(re.search(r"ok=(\d+)", line).group(1)) if line else 0
    return min(ok, held), rss, f"{line} established_when_measured={held}"


def established(port):
    """Client connections to 127.0.0.1:port the server holds right now."""
    try:
        r = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True,
                           text=True, timeout=30)
        return sum(1 for x in r.stdout.splitlines() if x.strip())
    except (OSError, subprocess.TimeoutExpired):
        return 0
