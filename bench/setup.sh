#!/usr/bin/env bash
# bench/setup.sh: install what the benchmark needs from Debian 12, idempotently
# (scripts/install-deps.sh bench: the build's packages plus caddy, pebble,
# nginx, haproxy, wrk, nghttp2-client, knot).
# Debian's maintainer scripts would auto-start nginx, haproxy, caddy and knot
# (nginx's default site listens on 0.0.0.0:80). install-deps.sh installs under a
# temporary /usr/sbin/policy-rc.d that forbids service starts; if a service
# started anyway we stop it by the PID in its pid file, never by name.
set -euo pipefail

bash "$(dirname "$0")/../scripts/install-deps.sh" bench

if [[ "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; then
  for s in nginx haproxy caddy knot; do
    if systemctl is-active --quiet "$s" 2>/dev/null; then systemctl stop "$s" || true; fi
  done
else
  for pf in /run/nginx.pid /run/haproxy.pid /run/knot/knot.pid /var/run/nginx.pid /var/run/haproxy.pid; do
    [[ -s $pf ]] || continue
    pid=$(head -n1 "$pf" | tr -dc 0-9)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      echo "[setup] stopping auto-started service pid $pid ($pf)"
      kill "$pid" || true
    fi
  done
fi
