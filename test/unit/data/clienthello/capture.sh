#!/bin/sh
# Regenerates the ClientHello captures used by test_clienthello.c and the
# fuzz_clienthello seed corpus: a throwaway listener on 127.0.0.1 stores the
# first bytes each client sends, then closes. Run from this directory.
set -eu
listen() {
    python3 - "$1" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(1)
open(".port", "w").write(str(s.getsockname()[1]))
s.settimeout(10)
c, _ = s.accept(); c.settimeout(1.0)
data, t = b"", time.time()
while time.time() - t < 1.5:
    try:
        d = c.recv(65536)
    except socket.timeout:
        break
    if not d:
        break
    data += d
open(sys.argv[1], "wb").write(data)
PY
    sleep 0.5
}
cap() {
    out=$1; shift
    listen "$out"
    timeout 5 openssl s_client -connect "127.0.0.1:$(cat .port)" "$@" </dev/null >/dev/null 2>&1 || true
    wait
}
cap tls13_alpn_http11.bin -servername x.example.com -alpn http/1.1
cap tls12_alpn_http11.bin -servername x.example.com -alpn http/1.1 -tls1_2
cap acme.bin -servername x.example.com -alpn acme-tls/1
cap nosni.bin -noservername -alpn http/1.1
cap h2_both.bin -servername X.Example.COM -alpn h2,http/1.1
cap noalpn.bin -servername x.example.com
cap tls13only.bin -servername x.example.com -tls1_3 -alpn h2
listen python_ssl.bin
python3 -c "
import socket, ssl
c = ssl.create_default_context(); c.set_alpn_protocols(['h2', 'http/1.1'])
s = socket.create_connection(('127.0.0.1', $(cat .port))); s.settimeout(3)
try: c.wrap_socket(s, server_hostname='py.example.org')
except Exception: pass
"
wait
listen curl.bin
port=$(cat .port)
timeout 5 curl -s --resolve "curl.example.net:$port:127.0.0.1" "https://curl.example.net:$port/" -o /dev/null || true
wait
rm -f .port
ls -l ./*.bin
