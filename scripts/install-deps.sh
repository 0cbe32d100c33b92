#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing Hee needs.
# Idempotent: packages already present are left alone. Services that Debian would
# auto-start (knot, nsd) are kept from starting with a temporary policy-rc.d, since
# the tests start their own instances on loopback.
set -euo pipefail

BUILD=(build-essential cmake pkg-config clang libclang-rt-14-dev
       libevent-dev libssl-dev libcurl4-openssl-dev libsqlite3-dev libldns-dev
       libjansson-dev libidn2-dev libpsl-dev libinih-dev libcmocka-dev)
# python3: the next steps scripts/run.sh prints parse JSON and serve a demo app with it
RUN=(openssl ca-certificates sqlite3 curl python3)
TEST=(pebble knot knot-dnsutils python3 python3-cryptography procps iproute2 nginx wrk strace)
# bench/run's peers and clients (bench/setup.sh)
BENCH=(caddy pebble nginx haproxy wrk nghttp2-client knot knot-dnsutils python3 procps)

want=("${BUILD[@]}" "${RUN[@]}")
case "${1:-run}" in
  test) want+=("${TEST[@]}") ;;
  bench) want+=("${BENCH[@]}") ;;
  run)  ;;
  *) echo "usage: $0 [run|test|bench]" >&2; exit 2 ;;
esac

# Tests and bench/run give programs their own names by bind-mounting a file
# over /etc/hosts in a private mount namespace, so it must exist. Every
# installed Debian has it (the installer writes it); a debootstrap'd root
# does not: give it Debian's stock lines.
if [[ ${1:-run} != run && ! -e /etc/hosts && $(id -u) == 0 ]]; then
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
  echo "[deps] created /etc/hosts (stock Debian lines)"
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "[deps] all packages present"
  exit 0
fi

[[ $(id -u) == 0 ]] || { echo "[deps] need root to install: ${missing[*]}" >&2; exit 1; }
created_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
echo "[deps] installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
