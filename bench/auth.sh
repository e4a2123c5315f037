#!/usr/bin/env bash
# What API keys cost: `GET /api/v1/tasks/{id}` with an admin key against the
# same request with authentication off (`VAPORA_AUTH=off`), on one store, in
# one run, rounds alternating. Release build; needs wrk. Prints markdown.
#   bench/auth.sh > /tmp/auth.md
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p vapora-backend --bin vapora-backend
BIN=target/release/vapora-backend
PORT=18201
ROUNDS=${ROUNDS:-3}
DATA=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DATA"' EXIT

wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
# wrk --latency summary -> "req/s p50 p99 non-2xx"
summarize() { awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} END {printf "%s %s %s %s\n", rps, p50, p99, (bad==""?0:bad)}'; }

start_backend() { # $1: keys|off
  # The per-key rate limit stays on (metering every request in both modes)
  # but high enough never to refuse one: this measures authentication.
  VAPORA_RATE_LIMIT_PER_SEC=100000000 VAPORA_AUTH=$1 VAPORA_PORT=$PORT VAPORA_DATABASE_URL="surrealkv://$DATA/db" VAPORA_LLM_PROVIDER=echo \
    VAPORA_ADMIN_KEY_FILE="$DATA/admin.key" RUST_LOG=error "$BIN" >"$DATA/backend-$1.log" 2>&1 &
  BACKEND=$!
  wait_up "http://127.0.0.1:$PORT/ready"
}
stop_backend() { kill -TERM "$BACKEND"; wait "$BACKEND"; }

start_backend keys
KEY=$(cat "$DATA/admin.key")
AUTH="Authorization: Bearer $KEY"
PROJECT=$(curl -sf -XPOST "http://127.0.0.1:$PORT/api/v1/projects" -H "$AUTH" -H 'content-type: application/json' \
  -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
TASK=$(curl -sf -XPOST "http://127.0.0.1:$PORT/api/v1/tasks" -H "$AUTH" -H 'content-type: application/json' \
  -d "{\"project_id\":\"$PROJECT\",\"title\":\"t\",\"role\":\"developer\",\"dispatch\":false}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# Without a key the keyed build must refuse, or the comparison means nothing.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/tasks/$TASK")" = 401 ]
stop_backend

URL="http://127.0.0.1:$PORT/api/v1/tasks/$TASK"
echo "# Auth cost, $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
echo
echo "\`GET /api/v1/tasks/{id}\` with an admin key, \`wrk -t2 -c100 -d10s\`, surrealkv://, $ROUNDS rounds alternating"
echo "between authentication on (\`VAPORA_AUTH=keys\`) and off (\`VAPORA_AUTH=off\`, same header sent)."
echo
echo "| round | mode | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
declare -A SUM=([keys]=0 [off]=0)
for round in $(seq "$ROUNDS"); do
  for mode in keys off; do
    start_backend "$mode"
    wrk -t2 -c100 -d2s -H "$AUTH" "$URL" >/dev/null # warm-up
    read -r rps p50 p99 bad < <(wrk -t2 -c100 -d10s --latency -H "$AUTH" "$URL" | summarize)
    stop_backend
    echo "| $round | $mode | $rps | $p50 | $p99 | $bad |"
    [ "$bad" = 0 ] || { echo "non-2xx answers: the comparison is void" >&2; exit 1; }
    SUM[$mode]=$(awk -v a="${SUM[$mode]}" -v b="$rps" 'BEGIN {print a + b}')
  done
done
echo
awk -v k="${SUM[keys]}" -v o="${SUM[off]}" -v n="$ROUNDS" 'BEGIN {
  printf "Mean: %.0f req/s with keys, %.0f req/s without; keys/off = %.3f (auth costs %.1f%%).\n", k/n, o/n, k/o, (1 - k/o) * 100 }'
