#!/usr/bin/env bash
# README command 1: install what hee needs, build it (Release), start it on the
# embedded default (conf/hee.conf: built-in local CA, unprivileged ports) in the
# background, and print what to do next.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash scripts/install-deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHEE_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"

mkdir -m 700 -p data
if [[ -f data/hee.pid ]] && kill -0 "$(cat data/hee.pid)" 2>/dev/null; then
  echo "hee is already running (pid $(cat data/hee.pid)); stop it with: kill $(cat data/hee.pid)"
else
  build/hee serve --config conf/hee.conf --check >/dev/null
  nohup build/hee serve --config conf/hee.conf >>data/hee.log 2>&1 &
  echo $! >data/hee.pid
fi

api=http://127.0.0.1:9080
for _ in $(seq 1 100); do
  curl -fsS "$api/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat data/hee.pid)" 2>/dev/null || { echo "hee exited; see $top/data/hee.log" >&2; tail -n 20 data/hee.log >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$api/readyz" >/dev/null || { echo "hee did not become ready; see $top/data/hee.log" >&2; exit 1; }
build/hee ca export --config conf/hee.conf >data/hee-local-ca.pem 2>/dev/null || true

cat <<NEXT

hee is running (pid $(cat data/hee.pid)); log: $top/data/hee.log
  TLS edge :8443   HTTP :8080   API $api   metrics $api/metrics

Next steps (copy and paste):
  ADMIN=\$(cat $top/data/admin.token)
  # 1. a project whose upstream is your app; "registration" trusts registration
  #    alone (handy locally; in production leave it out so DNS is verified)
  curl -s -H "Authorization: Bearer \$ADMIN" -H 'Content-Type: application/json' \\
       -d '{"slug":"acme","upstream":"http://127.0.0.1:3000","settings":{"verification":"registration"}}' \\
       $api/v1/projects
  # 2. a token for that project (shown once)
  TOKEN=\$(curl -s -H "Authorization: Bearer \$ADMIN" -H 'Content-Type: application/json' \\
       -d '{"projectSlug":"acme","scopes":["connections:read","connections:write"]}' \\
       $api/v1/tokens | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["token"])')
  # 3. a customer's hostname, with metadata your app wants back
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"hostname":"docs.example.test","metadata":{"workspaceId":"ws_1"}}' $api/v1/edge/domains
  # 4. the first HTTPS request issues its certificate from the local CA
  #    (start your app on 127.0.0.1:3000 first, e.g. python3 -m http.server 3000)
  curl --cacert $top/data/hee-local-ca.pem --resolve docs.example.test:8443:127.0.0.1 \\
       https://docs.example.test:8443/
  # 5. what your app asks Hee on each request
  curl -s -H "Authorization: Bearer \$TOKEN" "$api/v1/edge/resolve?hostname=docs.example.test"

  Local CA root to trust: $top/data/hee-local-ca.pem   (build/hee ca export --config conf/hee.conf)
  Stop: kill \$(cat $top/data/hee.pid)
NEXT
