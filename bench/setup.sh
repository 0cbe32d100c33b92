#!/usr/bin/env bash
# bench/setup.sh: install what the benchmark needs from Debian 12, idempotently.
#   caddy pebble nginx haproxy wrk nghttp2-client knot (+ knot-dnsutils) openssl curl python3 sqlite3
# Debian's maintainer scripts would auto-start nginx, haproxy, caddy and knot
# (nginx's default site listens on 0.0.0.0:80). We install under a temporary
# /usr/sbin/policy-rc.d that forbids service starts (removed afterwards, and only
# if we created it); if a service started anyway we stop it by the PID in its
# pid file, never by name.
set -euo pipefail

PKGS=(caddy pebble nginx haproxy wrk nghttp2-client knot knot-dnsutils openssl curl python3 sqlite3 procps)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { echo "[setup] need root to install: ${missing[*]}" >&2; exit 1; }
  echo "[setup] installing: ${missing[*]}"
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  timeout 600 apt-get update
  DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "[setup] all packages already installed"
fi

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
