"""systems: the servers under test and the fixtures around them.

Each class renders its configuration from bench/conf/*.in into a fresh
directory, starts the server in the foreground through Procs (own session),
waits for its port, checks that it listens on loopback only, and stops it by
its process group. The settings that must match across proxies (ECDSA P-256
certificates, TLS 1.2+1.3, upstream keep-alive, logging off or at warn, two
workers/threads) live in the templates; see BENCHMARKS.md.
"""

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request

from . import proc as P
from .util import Unavailable, mkdir, render

# HEE_BENCH_PORT_OFFSET shifts every port, so that two harness runs (say, a
# developer's scenario and the suite's selftest) can share one machine.
_PORT_OFFSET = int(os.environ.get("HEE_BENCH_PORT_OFFSET", "0"))
PORTS = {k: v + _PORT_OFFSET for k, v in {
    "upstream": 18080, "nginx": 8443, "haproxy": 8444, "caddy": 8445, "caddy_od": 8446,
    "hee": 8447, "hee_http": 18082, "hee_api": 19080, "nginx_pinned": 8448, "haproxy_pinned": 8449,
    "hee_pinned": 8450, "hee_pinned_http": 18083, "hee_pinned_api": 19081, "caddy_admin": 2019, "caddy_http": 18081,
    "pebble": 14000, "pebble_mgmt": 15000, "dns": 15353, "receiver": 18090,
}.items()}
UPSTREAM = f"127.0.0.1:{PORTS['upstream']}"
ASK_URL = f"http://{UPSTREAM}/ask"


class Server:
    name = "?"
    port = 0
    poll_step = 0.05

    def __init__(self, ctx):
        self.ctx, self.proc, self.dir = ctx, None, None

    def argv_env(self):
        raise NotImplementedError

    def start(self, tag, wait=30.0):
        self.dir = mkdir(self.ctx.tmp, f"{self.name}-{tag}")
        argv, env = self.argv_env()
        self.spawned_at = time.monotonic()
        self.proc = self.ctx.procs.start(self.name, argv, os.path.join(self.dir, "stdout.log"), env=env,
                                         cwd=self.dir)
        if not P.wait_port(self.port, wait, self.proc, self.poll_step):
            tail = self.proc.log_tail()
            self.stop()
            raise RuntimeError(f"{self.name} did not open 127.0.0.1:{self.port}:\n{tail}")
        try:
            self.after_start()
            addrs = P.listeners_of(self.proc.pid)
            if not P.only_loopback(addrs):
                raise RuntimeError(f"{self.name} listens beyond loopback: {addrs}")
        except BaseException:
            self.stop()
            raise
        return self

    def after_start(self):
        pass

    def stop(self):
        if self.proc is None:
            return
        self.ctx.procs.stop(self.proc)
        try:
            shutil.copy(self.proc.log_path, os.path.join(self.ctx.out, f"{os.path.basename(self.dir)}.log"))
        except OSError:
            pass
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def conf(self, name):
        return os.path.join(self.ctx.home, "conf", name)


class Upstream(Server):
    """The one origin: nginx, 1 worker, GET / -> 100 bytes, /ask for Caddy."""
    name, port = "upstream", PORTS["upstream"]

    def argv_env(self):
        c = render(self.conf("upstream.conf.in"), os.path.join(self.dir, "nginx.conf"), DIR=self.dir,
                   UPSTREAM_PORT=self.port)
        return ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", c], None

    def after_start(self):
        body = urllib.request.urlopen(f"http://{UPSTREAM}/", timeout=5).read()
        if len(body) != 100:
            raise RuntimeError(f"upstream body is {len(body)} bytes, expected 100")


class Nginx(Server):
    name, port = "nginx", PORTS["nginx"]
    affinity = ""

    def argv_env(self):
        c = render(self.conf("nginx.conf.in"), os.path.join(self.dir, "nginx.conf"), DIR=self.dir, PORT=self.port,
                   CERTS=self.ctx.certs, UPSTREAM=UPSTREAM, AFFINITY=self.affinity)
        return ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", c], None


class NginxPinned(Nginx):
    """nginx with each worker pinned to its own CPU (worker_cpu_affinity auto)."""
    name, port = "nginx-pinned", PORTS["nginx_pinned"]
    affinity = "worker_cpu_affinity auto;"


class Haproxy(Server):
    name, port = "haproxy", PORTS["haproxy"]
    affinity = ""

    def argv_env(self):
        c = render(self.conf("haproxy.cfg.in"), os.path.join(self.dir, "haproxy.cfg"), DIR=self.dir,
                   PORT=self.port, CERTS=self.ctx.certs, UPSTREAM=UPSTREAM, AFFINITY=self.affinity)
        return ["haproxy", "-db", "-f", c], None


class HaproxyPinned(Haproxy):
    """HAProxy with thread 1 on CPU 0 and thread 2 on CPU 1."""
    name, port = "haproxy-pinned", PORTS["haproxy_pinned"]
    affinity = "cpu-map auto:1/1-2 0-1"


class Caddy(Server):
    """Caddy with the static certificate (the throughput peer)."""
    name, port = "caddy", PORTS["caddy"]
    template = "caddy-static.json.in"

    def caddy_env(self):
        return {"XDG_CONFIG_HOME": f"{self.dir}/xdg-config", "XDG_DATA_HOME": f"{self.dir}/xdg-data",
                "HOME": self.dir}

    def render_conf(self):
        return render(self.conf(self.template), os.path.join(self.dir, "caddy.json"), DIR=self.dir,
                      PORT=self.port, CERTS=self.ctx.certs, UPSTREAM=UPSTREAM, ADMIN_PORT=PORTS["caddy_admin"],
                      HTTP_PORT=PORTS["caddy_http"])

    def argv_env(self):
        return ["caddy", "run", "--config", self.render_conf()], self.caddy_env()


class CaddyOnDemand(Caddy):
    """Caddy with on-demand TLS from Pebble, gated by the upstream's /ask.

    shards > 1 spreads names over that many automation policies (subjects
    *.sN.test), each with its own ACME account: Caddy rate-limits orders to
    10 per 10 s per CA+account, which would make 1000 certificates take 17
    minutes. Used only by the memory-per-certificate test."""
    name, port = "caddy-od", PORTS["caddy_od"]
    template = "caddy-ondemand.json.in"

    def __init__(self, ctx, pebble, shards=1):
        super().__init__(ctx)
        self.pebble, self.shards = pebble, shards

    def render_conf(self):
        path = render(self.conf(self.template), os.path.join(self.dir, "caddy.json"), DIR=self.dir, PORT=self.port,
                      UPSTREAM=UPSTREAM, ASK_URL=ASK_URL, ACME_DIR=self.pebble.directory,
                      ACME_CA=self.pebble.ca_file, ADMIN_PORT=PORTS["caddy_admin"], HTTP_PORT=PORTS["caddy_http"])
        if self.shards > 1:
            with open(path) as f:
                cfg = json.load(f)
            auto = cfg["apps"]["tls"]["automation"]
            base = auto["policies"][0]
            pols = []
            for i in range(self.shards):
                p = json.loads(json.dumps(base))
                p["subjects"] = [f"*.s{i}.test"]
                p["issuers"][0]["email"] = f"bench-shard{i}@bench.test"
                pols.append(p)
            auto["policies"] = pols + [base]
            with open(path, "w") as f:
                json.dump(cfg, f, indent=1)
        return path


class Pebble(Server):
    """Pebble with validation always succeeding and no sleeps or nonce rejects."""
    name, port = "pebble", PORTS["pebble"]

    def argv_env(self):
        c = render(self.conf("pebble.json.in"), os.path.join(self.dir, "pebble.json"), PEBBLE_PORT=self.port,
                   PEBBLE_MGMT_PORT=PORTS["pebble_mgmt"], CERTS=self.ctx.certs)
        env = {"PEBBLE_VA_ALWAYS_VALID": "1", "PEBBLE_VA_NOSLEEP": "1",
               "PEBBLE_WFE_NONCEREJECT": os.environ.get("PEBBLE_WFE_NONCEREJECT", "0")}
        return ["pebble", "-config", c], env

    @property
    def directory(self):
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_file(self):
        return os.path.join(self.ctx.certs, "ca.crt")

    def after_start(self):
        if not P.wait_port(PORTS["pebble_mgmt"], 15, self.proc):
            raise RuntimeError("pebble management port did not open")
        sslctx = ssl.create_default_context(cafile=self.ca_file)
        pem = urllib.request.urlopen(f"https://127.0.0.1:{PORTS['pebble_mgmt']}/roots/0", timeout=10,
                                     context=sslctx).read().decode()
        if "BEGIN CERTIFICATE" not in pem:
            raise RuntimeError("could not fetch pebble's root")
        self.root_file = os.path.join(self.dir, "root.pem")
        with open(self.root_file, "w") as f:
            f.write(pem)


class Knot(Server):
    """Knot DNS, authoritative for one zone, for the probe benchmark."""
    name, port = "knot", PORTS["dns"]

    def __init__(self, ctx, zone, records):
        super().__init__(ctx)
        self.zone, self.records = zone, records

    def argv_env(self):
        with open(os.path.join(self.dir, f"{self.zone}.zone"), "w") as f:
            f.write(f"$ORIGIN {self.zone}.\n$TTL 300\n"
                    f"@ SOA ns.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60\n"
                    f"@ NS ns.{self.zone}.\nns A 127.0.0.1\n")
            f.write("\n".join(self.records) + "\n")
        c = render(self.conf("knot.conf.in"), os.path.join(self.dir, "knot.conf"), DIR=self.dir, DNS_PORT=self.port,
                   ZONE=self.zone)
        return ["knotd", "-c", c], None

    def after_start(self):
        # TCP opens before the zone is loaded; wait until it answers.
        for _ in range(100):
            r = subprocess.run(["kdig", "+short", "+timeout=1", "+retry=0", "-p", str(self.port), "@127.0.0.1",
                                f"ns.{self.zone}", "A"], capture_output=True, text=True, timeout=10)
            if "127.0.0.1" in r.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError("knot does not serve the zone")


class Hee(Server):
    """Hee, from build-bench-rel, with the bench settings in conf/hee.conf.in."""
    name, port = "hee", PORTS["hee"]
    port_api, port_http = PORTS["hee_api"], PORTS["hee_http"]
    poll_step = 0.002
    env = None

    def __init__(self, ctx, acme=None, data_dir=None, resolvers="", edge_target="edge.bench.test",
                 cert_cache=20000):
        super().__init__(ctx)
        self.acme, self.data_dir, self.resolvers = acme, data_dir, resolvers
        self.edge_target, self.cert_cache = edge_target, cert_cache
        self.api = None

    def argv_env(self):
        if self.data_dir is None:
            self.data_dir = os.path.join(self.dir, "data")
        c = render(self.conf("hee.conf.in"), os.path.join(self.dir, "hee.conf"), DATA_DIR=self.data_dir,
                   PORT=self.port, HTTP_PORT=self.port_http, API_PORT=self.port_api,
                   EDGE_TARGET=self.edge_target, CERT_CACHE=self.cert_cache,
                   ACME_DIR=self.acme.directory if self.acme else "",
                   ACME_CA=self.acme.ca_file if self.acme else "", RESOLVERS=self.resolvers)
        self.conf_path = c
        return [self.ctx.hee_bin, "serve", "--config", c], self.env

    def after_start(self):
        from .hee import HeeApi
        if not P.wait_port(self.port_api, 30, self.proc, self.poll_step):
            raise RuntimeError(f"hee API did not open:\n{self.proc.log_tail()}")
        self.api = HeeApi(self.port_api, self.data_dir)
        self.api.wait_ready(30)
        self.ready_at = time.monotonic()

    def local_ca_pem(self):
        """The built-in CA's root (hee ca export), for verifying its leaves."""
        out = os.path.join(self.dir, "local-ca.pem")
        r = subprocess.run([self.ctx.hee_bin, "ca", "export", "--config", self.conf_path], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0 or "BEGIN CERTIFICATE" not in r.stdout:
            return None
        with open(out, "w") as f:
            f.write(r.stdout)
        return out


class HeePinned(Hee):
    """Hee with [server] pin_workers = yes (default no), beside the pinned peers."""
    name, port = "hee-pinned", PORTS["hee_pinned"]
    port_api, port_http = PORTS["hee_pinned_api"], PORTS["hee_pinned_http"]
    env = {"HEE_SERVER_PIN_WORKERS": "yes"}


def probe_hee(ctx):
    """Starts Hee once with the local CA, registers one name and asks for it.
    Returns (why it does not start, why its edge does not serve) with ''
    for what works; the reasons become the n/a notes of the table."""
    from .load import tls_get
    if not ctx.hee_bin or not os.access(ctx.hee_bin, os.X_OK):
        why = f"no hee binary at {ctx.hee_bin} (build failed?)"
        return why, why
    h = Hee(ctx)
    try:
        h.start("probe")
    except Exception as e:  # noqa: BLE001 - reported as the reason
        why = f"hee does not start: {str(e).splitlines()[0][:160]}"
        return why, why
    try:
        try:
            h.api.setup_project()
            h.api.add_domain("probe.bench.test")
        except Unavailable as e:
            return "", str(e)
        r = tls_get(h.port, "probe.bench.test", timeout=20)
        if r["code"] != 200:
            return "", f"feature missing: the edge did not serve a registered name ({r['error'] or r['code']})"
        return "", ""
    finally:
        h.stop()
