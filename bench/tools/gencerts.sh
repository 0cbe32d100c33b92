#!/usr/bin/env bash
# gencerts.sh OUTDIR   (copied from the shared peers harness; adds wild.crt)
# Generates, with openssl, a throw-away local CA (ECDSA P-256) and two leaf
# certificates signed by it (both ECDSA P-256):
#   static.crt/.key  - the one static cert every static-cert peer serves
#                      (SAN: bench.test, localhost, 127.0.0.1, ::1)
#   pebble.crt/.key  - Pebble's own HTTPS listener cert for its ACME directory
#                      (the Debian pebble package does not ship test/certs/)
#   static.pem       - static.crt + static.key concatenated (HAProxy format)
#   wild.crt/.key    - *.seed.test, the leaf seeded into Hee's store for the
#                      start-up test (one cert valid for every seeded name)
#   ca.crt           - the CA; trust it to verify either leaf.
set -euo pipefail
out=${1:?usage: gencerts.sh OUTDIR}
mkdir -p "$out"
cd "$out"
[[ -s ca.crt && -s static.pem && -s pebble.crt && -s wild.crt ]] && exit 0

openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=peers-bench local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt

leaf() { # name san...
  local n=$1 san=$2
  openssl ecparam -name prime256v1 -genkey -noout -out "$n.key" 2>/dev/null
  openssl req -new -key "$n.key" -subj "/CN=$3" -out "$n.csr"
  printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$san" >"$n.ext"
  openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 30 \
    -extfile "$n.ext" -out "$n.crt" 2>/dev/null
  rm -f "$n.csr" "$n.ext"
}
leaf static "DNS:bench.test,DNS:localhost,IP:127.0.0.1,IP:::1" bench.test
leaf pebble "DNS:localhost,IP:127.0.0.1,IP:::1" localhost
leaf wild "DNS:*.seed.test" "*.seed.test"
cat static.crt static.key >static.pem
chmod 600 ./*.key static.pem
