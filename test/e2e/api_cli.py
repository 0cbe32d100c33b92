"""The admin CLI against a running daemon (same store, same events and audit
as the API), and configuration errors reported as file:line: reason."""
import json
import os
import subprocess

from heetest import Hee, expect, expect_error, run, test

H = Hee()
BIN = os.environ["HEE_BIN"]


def check_config(text):
    path = os.path.join(H.dir, "check.conf")
    with open(path, "w") as f:
        f.write(text)
    return path, subprocess.run([BIN, "serve", "--config", path, "--check"], capture_output=True, text=True,
                                timeout=30)


@test
def config_check_reports_file_and_line():
    path, p = check_config("[server]\nworkers = 2\n\n[api]\nbogus_key = 1\n")
    expect(p.returncode != 0, p)
    expect("%s:5: [api] bogus_key: unknown setting" % path in p.stderr, p.stderr)
    path, p = check_config("[api]\nrate_limit = lots\n")
    expect(p.returncode != 0 and "%s:2: [api] rate_limit: expected an integer" % path in p.stderr, p.stderr)
    path, p = check_config("[edge]\nhandshake_wait = 10 parsecs\n")
    expect(p.returncode != 0 and ("%s:2:" % path) in p.stderr, p.stderr)
    path, p = check_config("[api]\nlisten = 127.0.0.1:1\n")
    expect(p.returncode == 0, p)
    p = subprocess.run([BIN, "serve", "--config", os.path.join(H.dir, "missing.conf"), "--check"],
                       capture_output=True, text=True, timeout=30)
    expect(p.returncode != 0 and "missing.conf" in p.stderr, p.stderr)


@test
def cli_project_token_domain_against_running_daemon():
    p = H.cli("project", "create", "clip", "--upstream", "http://127.0.0.1:7", "--fallback", "http://127.0.0.1:8",
              "--max-domains", "3")
    expect("project clip created" in p.stdout and "hmac key: " in p.stdout, p.stdout)
    p = H.cli("project", "create", "clip", "--upstream", "http://127.0.0.1:7", check=False)
    expect(p.returncode == 1 and "taken" in p.stderr, p)
    p = H.cli("project", "create", "Bad Slug", "--upstream", "http://127.0.0.1:7", check=False)
    expect(p.returncode == 1 and "(invalid)" in p.stderr, p)
    # the daemon sees the CLI's project at once (the API reads the store)
    r = H.admin().get("/v1/projects/clip")
    expect(r.status == 200 and r.json()["project"]["upstreamFallback"] == "http://127.0.0.1:8", r)
    expect(r.json()["project"]["maxDomains"] == 3, r)
    expect("clip" in H.cli("project", "list").stdout)
    # a token minted by the CLI works against the daemon
    p = H.cli("token", "create", "--project", "clip", "--scopes", "connections:read connections:write",
              "--name", "cli-made")
    token = p.stdout.strip()
    expect(token.startswith("hee_") and "\n" not in token, p.stdout)
    expect("tok_" in p.stderr and token not in p.stderr, p.stderr)
    c = H.client(token)
    expect(c.get("/v1/edge/domains").status == 200)
    p = H.cli("token", "create", "--project", "clip", "--scopes", "apps:admin", check=False)
    expect(p.returncode == 1 and "operator scope" in p.stderr, p)
    p = H.cli("token", "create", "--project", "clip", check=False)
    expect(p.returncode == 2, p)
    adm = H.cli("token", "create", "--admin", "--name", "ops2").stdout.strip()
    expect(H.client(adm).get("/v1/projects").status == 200)
    # domains: the CLI and the API share one namespace and one event stream
    p = H.cli("domain", "add", "Cli.Example.COM", "--project", "clip", "--metadata", '{"from": "cli"}')
    d = json.loads(p.stdout)
    expect(d["hostname"] == "cli.example.com" and d["projectSlug"] == "clip", d)
    expect(d["metadata"] == {"from": "cli"} and d["state"] == "pending_ownership", d)
    r = c.get("/v1/edge/resolve?hostname=cli.example.com")
    expect(r.status == 200 and r.body.endswith(b'"metadata":{"from": "cli"}}'), r)
    expect_error(c.post("/v1/edge/domains", {"hostname": "cli.example.com"}), 409, "HostnameConflict")
    p = H.cli("domain", "add", "cli.example.com", "--project", "clip", check=False)
    expect(p.returncode == 1 and "HostnameConflict" in p.stderr, p)
    expect(c.post("/v1/edge/domains", {"hostname": "api.example.com"}).status == 201)
    p = H.cli("domain", "add", "x.example.com", "--project", "clip", "--metadata", "[1]", check=False)
    expect(p.returncode == 1 and "metadata" in p.stderr, p)
    p = H.cli("domain", "add", "localhost", "--project", "clip", check=False)
    expect(p.returncode == 1 and "single-label" in p.stderr, p)
    p = H.cli("domain", "add", "q.example.com", "--project", "clip")
    p = H.cli("domain", "add", "q2.example.com", "--project", "clip", check=False)
    expect(p.returncode == 1 and "QuotaExceeded" in p.stderr, p)
    out = H.cli("domain", "list", "--project", "clip").stdout
    expect("cli.example.com" in out and "api.example.com" in out and "q.example.com" in out, out)
    expect("cli.example.com" in H.cli("domain", "list").stdout)
    d = json.loads(H.cli("domain", "show", "CLI.example.com.").stdout)
    expect(d["hostname"] == "cli.example.com", d)
    p = H.cli("domain", "show", "nope.example.com", check=False)
    expect(p.returncode == 1 and "no such domain" in p.stderr, p)
    d = json.loads(H.cli("domain", "rm", "cli.example.com").stdout)
    expect(d["removedAt"], d)
    expect_error(c.get("/v1/edge/resolve?hostname=cli.example.com"), 404, "not_found")
    # the CLI wrote the same events and audit rows the API would
    ev = H.sql("SELECT e.type FROM events e JOIN domains d ON d.id = e.domain_id WHERE d.hostname = "
               "'cli.example.com' ORDER BY e.id")
    expect(ev == [("domain.created",), ("domain.deleted",)], ev)
    au = H.sql("SELECT token_id, action FROM audit WHERE target = 'cli.example.com' ORDER BY id")
    expect(au == [("cli", "domain.create"), ("cli", "domain.delete")], au)


@test
def cli_usage_errors_and_ca_export():
    p = H.cli("domain", "frobnicate", check=False)
    expect(p.returncode == 2 and "unknown command" in p.stderr, p)
    p = H.cli("domain", "add", "a.example.com", "--project", check=False)
    expect(p.returncode == 2 and "needs a value" in p.stderr, p)
    p = H.cli("domain", "add", "a.example.com", "--colour", "red", check=False)
    expect(p.returncode == 2 and "unknown option" in p.stderr, p)
    p = H.cli("domain", "add", "a.example.com", "--project", "nope", check=False)
    expect(p.returncode == 1 and "no such project" in p.stderr, p)
    p = H.cli("ca", "export", check=False)
    if p.returncode == 0:
        expect(p.stdout.startswith("-----BEGIN CERTIFICATE-----"), p.stdout[:100])
    else:
        expect(p.returncode == 1 and "no local CA" in p.stderr, p)


def teardown():
    H.stop()
    H.cleanup()


if __name__ == "__main__":
    run(teardown=teardown)
