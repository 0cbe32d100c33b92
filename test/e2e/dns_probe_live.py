"""Live DNS probe test: the resolver and probe (control/dns.c, control/probe.c)
against a real Knot DNS on loopback.

    python3 dns_probe_live.py <path to test_dns_live> [--bench [N] [SECONDS]]

Starts knot (test/lib/dnsserver.py), loads the zones below, runs the C test
program's "main" group, edits cust.test (adds later.cust.test, fixes
wrong.cust.test) and runs the "edited" group. With --bench it instead runs
the bounded probes/s benchmark (default 20000 probes, 30 s per profile).
Exit 77 (skipped) when knotd is not installed.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dnsserver import DnsServer  # noqa: E402

BIG_TXT = ['big TXT "%02d-%s"' % (i, "0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdef")
           for i in range(12)]  # ~780 bytes: truncated without EDNS

CUST = [
    '@ CAA 0 issue "letsencrypt.org"',
    "www CNAME edge.hee.la.",
    "apex A 192.0.2.10",
    "apex AAAA 2001:db8::10",
    '_customdomain-challenge.txt TXT "tok-live-1"',
    "wrong CNAME shop.other.test.",
    "c1 CNAME c2",
    "c2 CNAME c3.other.test.",
    "loop1 CNAME loop2",
    "loop2 CNAME loop1",
    "cf A 104.16.1.1",
    "stray A 192.0.2.10",
    "stray AAAA 2001:db8::99",
    "blocked A 192.0.2.10",
    'blocked CAA 0 issue "digicert.com"',
    "partial A 192.0.2.10",
    "partial A 198.51.100.9",
] + BIG_TXT

OTHER = ["c3 CNAME edge.hee.la.", "shop A 198.51.100.7"]
EDGE = ["edge A 192.0.2.10", "edge AAAA 2001:db8::10"]


def run(binary, args, env):
    print("+ %s %s" % (os.path.basename(binary), " ".join(args)), flush=True)
    return subprocess.run([binary, *args], env=env, timeout=300).returncode


def main(argv):
    if len(argv) < 1:
        print(__doc__)
        return 2
    if not shutil.which("knotd") or not shutil.which("knotc"):
        print("knotd not installed: skipped")
        return 77
    binary = argv[0]
    with DnsServer() as d:
        d.set_zone("hee.la", EDGE)
        d.set_zone("cust.test", CUST)
        d.set_zone("other.test", OTHER)
        env = dict(os.environ, HEE_DNS_SERVER=d.addr)
        print("knot on %s" % d.addr, flush=True)
        try:
            if len(argv) > 1 and argv[1] == "--bench":
                return run(binary, ["bench", *argv[2:4]], env)
            rc = run(binary, ["main"], env)
            if rc != 0:
                sys.stderr.write(d.log_text()[-4000:])
                return rc
            fixed = [r for r in CUST if not r.startswith("wrong ")]
            d.set_zone("cust.test", fixed + ["later CNAME edge.hee.la.", "wrong CNAME edge.hee.la."])
            assert d.query("later.cust.test", "CNAME") == ("NOERROR", ["edge.hee.la."])
            return run(binary, ["edited"], env)
        except BaseException:
            sys.stderr.write(d.log_text()[-4000:])
            raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
